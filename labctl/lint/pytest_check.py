"""``pytest --labctl-check PATH``: Compose files and manifests linted as test items.

Each PATH (repeatable; ``labctl_check`` in the ini file too) becomes one item named
``labctl-check::PATH`` that fails with the ``FILE:LINE:COL RULE message`` lines of its
findings at or above ``--labctl-check-fail-on`` (default ``warning``), and errors with the
located message when the file cannot be read. No engine is needed, so a CI job can lint a
repository's stacks next to its other tests. A pytest plugin of its own (entry point
``labctl-check``), inert unless a path is named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


class CheckFailed(Exception):
    """The findings of one file (their text lines)."""


class CheckItem(pytest.Item):
    """One file checked by ``labctl check``."""

    def __init__(self, *, target: str, fail_on: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.fail_on = fail_on

    def runtest(self) -> None:
        from labctl import lint, stack

        findings = lint.run(stack.load([self.target]))
        failing = [f for f in findings if lint.at_or_above(f.severity, self.fail_on)]
        if failing:
            raise CheckFailed("\n".join(f.text() for f in failing))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from labctl.errors import LabctlError

        if isinstance(excinfo.value, (CheckFailed, LabctlError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(self.target), 0, f"labctl check {self.target}"


class CheckCollector:
    """Registered by the labctl plugin when ``--labctl-check`` (or the ini option) names files."""

    def __init__(self, paths: list[str], fail_on: str) -> None:
        self.paths = paths
        self.fail_on = fail_on

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        for p in self.paths:
            items.append(CheckItem.from_parent(session, name=f"labctl-check::{p}", target=p, fail_on=self.fail_on))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl", "labctl shared-memory scenarios")
    group.addoption("--labctl-check", action="append", default=[], metavar="PATH",
                    help="lint this Compose file or manifest with `labctl check` as a test item (repeatable)")
    group.addoption("--labctl-check-fail-on", choices=("error", "warning", "note"), default="warning",
                    help="the lowest severity that fails a --labctl-check item (default warning)")
    parser.addini("labctl_check", type="args", default=[], help="files linted as with --labctl-check")


def pytest_configure(config: pytest.Config) -> None:
    paths = [*config.getoption("labctl_check"), *config.getini("labctl_check")]
    if paths:
        config.pluginmanager.register(CheckCollector(paths, config.getoption("labctl_check_fail_on")),
                                      "labctl-check-items")
