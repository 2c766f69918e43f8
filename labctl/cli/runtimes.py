"""``run --runtime``: the option, and the scenarios with that OCI runtime given to the
containers that name none. Whether the engine has a runtime is a requirement like the
others (``labctl.scenario.requirements``, kind ``runtime``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from labctl.cli.params import option

if TYPE_CHECKING:
    from labctl.scenario.model import Scenario


def runtime_option(f):  # noqa: ANN001, ANN201 - a click decorator
    from labctl.runtime.oci import RUNTIMES  # docker-free and tiny

    return option("--runtime", "runtime", type=click.Choice(tuple(RUNTIMES)), default=None, metavar="NAME",
                  help="Run the scenario containers that name no runtime: on this OCI runtime instead of "
                       f"the engine's default ({', '.join(RUNTIMES)}).")(f)


def with_runtime(scenarios: list[Scenario], runtime: str | None) -> list[Scenario]:
    """The scenarios with ``runtime`` given to every container that names none."""
    if runtime is None:
        return scenarios
    return [dataclasses.replace(s, containers=tuple(c if c.runtime else dataclasses.replace(c, runtime=runtime)
                                                    for c in s.containers)) for s in scenarios]
