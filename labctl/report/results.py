"""What a run produced: the data the reports render. No engine import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["passed", "failed", "error", "skipped"]

# The one home of these facts: the CLI's --format/--report choices and the reports use them.
REPORT_FORMATS = ("text", "json", "junit")
# How the text report and the CLI's progress lines name each status.
STATUS_LABELS: dict[str, str] = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                                 "not run": "NOT RUN"}


@dataclass
class CheckResult:
    """One check's outcome. ``expected``/``observed`` are short human texts for failures."""

    name: str
    status: Status
    message: str = ""
    expected: str = ""
    observed: str = ""
    duration_s: float = 0.0


StepStatus = Literal["passed", "failed", "error", "not run"]


@dataclass
class StepResult:
    """One step of a scenario's timeline: ``action`` (restart, kill... or ``check``),
    ``at_s`` seconds after the timeline began, ``duration_s`` it took. A step after a
    failed or erring one is ``not run``. Check steps carry expected/observed."""

    name: str
    action: str
    status: StepStatus
    at_s: float = 0.0
    duration_s: float = 0.0
    message: str = ""
    expected: str = ""
    observed: str = ""


@dataclass
class ScenarioResult:
    """One scenario's outcome.

    status: passed (every check and step passed), failed (a check or a check step
    failed), error (the scenario could not be carried out: engine error, container
    timeout, bad image, an action step the engine refused...).
    ``logs`` maps container name to the tail of its output, kept for failures.
    """

    name: str
    file: str
    status: Status
    duration_s: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    message: str = ""
    logs: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    steps: list[StepResult] = field(default_factory=list)
    engine: str = ""  # the engine it ran on (docker, podman); "" when unknown
    # Why it was skipped, the short category the summary counts by ("needs --allow-host-ipc",
    # "needs linux/arm64 emulation", "only on podman"); the fix is in ``message``.
    reason: str = ""


@dataclass(frozen=True)
class EngineInfo:
    """An engine a run used: ``name`` (docker, podman) and its ``version`` (4.3.1)."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class RunResult:
    """A whole ``labctl run``."""

    run_id: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    duration_s: float = 0.0
    engines: list[EngineInfo] = field(default_factory=list)  # in the order they ran

    def skips_by_reason(self) -> dict[str, int]:
        """Skipped scenarios counted by ``reason`` (most frequent first)."""
        counts: dict[str, int] = {}
        for s in self.scenarios:
            if s.status == "skipped":
                key = s.reason or s.message or "skipped"
                counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def count(self, status: Status) -> int:
        return sum(1 for s in self.scenarios if s.status == status)

    @property
    def ok(self) -> bool:
        return all(s.status in ("passed", "skipped") for s in self.scenarios)


def side_by_side(run: RunResult) -> list[tuple[str, dict[str, ScenarioResult]]]:
    """Scenario name -> {engine name: its result}, in first-seen order: the outcomes of
    one scenario on each engine of a multi-engine run."""
    rows: dict[str, dict[str, ScenarioResult]] = {}
    for s in run.scenarios:
        rows.setdefault(s.name, {})[s.engine] = s
    return list(rows.items())
