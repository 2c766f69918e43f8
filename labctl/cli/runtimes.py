"""``run --runtime`` and the runtime requirement of scenarios: a scenario whose OCI runtime
the engine lacks is skipped (found in a folder) or refused (named on the command line),
with the reason and the fix from ``labctl.runtime.oci.availability``."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Sequence

import click

from labctl.cli.params import option
from labctl.errors import EngineError

if TYPE_CHECKING:
    from labctl.report.results import ScenarioResult
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


def needed(scenario: Scenario) -> list[str]:
    """The OCI runtimes the scenario's containers name, in file order, each once."""
    return list(dict.fromkeys(c.runtime for c in scenario.containers if c.runtime))


def sort_by_runtime(engine, scenarios: list[Scenario], paths: Sequence[str]  # noqa: ANN001 - an Engine
                    ) -> tuple[list[Scenario], list[ScenarioResult]]:
    """(runnable, skipped) on ``engine``: a scenario needing a runtime the engine lacks (or a
    security module the host does not enforce: SELinux for label=, AppArmor for apparmor=) is
    skipped with the reason and the fix, or, named as a file on the command line, refused
    (EngineError, exit 3, before anything starts on that engine)."""
    from labctl.report.results import ScenarioResult
    from labctl.runtime.oci import availability

    from labctl.scenario.security import USERNS_ENGINES, lsm_enabled, needs_lsm

    wanted = {r for s in scenarios for r in needed(s)}
    registered = engine.oci_runtimes() if wanted else {}
    lacking = {r: a.message() for r in sorted(wanted) if not (a := availability(r, engine.name, registered)).ok}
    for lsm in ("selinux", "apparmor"):
        if not lsm_enabled(lsm):
            lacking[lsm] = (f"needs {lsm} enforced by the host kernel (a {'label=' if lsm == 'selinux' else 'apparmor='} "
                            f"security option), and this host's kernel does not enforce {lsm}: the engine would "
                            f"accept the option and nothing would be enforced; fix: run it on a host with {lsm} "
                            "enabled (the option is still validated and exported)")
    explicit = {os.path.normpath(p) for p in paths if os.path.isfile(p)}
    runnable, skipped, refused = [], [], []
    for s in scenarios:
        need = needed(s) + sorted({m for c in s.containers for m in needs_lsm(c.security_opt)})
        missing = [lacking[r] for r in need if r in lacking]
        missing += [f"userns {c.userns} (containers.{c.name}) is not a per-container mode on {engine.name} "
                    f"(only on {', '.join(USERNS_ENGINES[c.userns])}); fix: run it with --engine "
                    f"{USERNS_ENGINES[c.userns][0]}" for c in s.containers
                    if c.userns and engine.name not in USERNS_ENGINES[c.userns]]
        if not missing:
            runnable.append(s)
        elif os.path.normpath(s.file) in explicit:
            refused.append(f"{s.file}: " + "; ".join(missing))
        else:
            skipped.append(ScenarioResult(s.name, s.file, "skipped", tags=s.tags, engine=engine.name,
                                          message="; ".join(missing)))
    if refused:
        raise EngineError("\n".join(refused))
    return runnable, skipped
