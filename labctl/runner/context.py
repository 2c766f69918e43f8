"""What every part of one scenario's run is handed: the engine, the scenario, names, labels,
the scenario deadline and the cancel flag. It holds no part of the run: ``ScenarioRun``
hands each part what it needs."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from labctl.errors import Interrupted
from labctl.runtime.labels import labels_for, selector
from labctl.runtime.engine import Engine
from labctl.scenario.model import Scenario

Progress = Callable[[str], None]


def slug(text: str) -> str:
    """``text`` as an engine object name part. Not truncated: two long names sharing a
    prefix must not share objects (scenario names are at most 63 characters)."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text)


@dataclass
class RunContext:
    """One scenario on one engine. ``deadline`` is on ``clock`` (monotonic seconds).
    ``image``: the workload image of the engine's own platform (probes and helpers run
    it; which image a scenario container runs is the start plan's ``Platforms``)."""

    engine: Engine
    scenario: Scenario
    run_id: str
    image: str
    keep: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress = lambda _msg: None  # noqa: E731
    clock: Callable[[], float] = time.monotonic
    deadline: float = 0.0
    prefix: str = ""

    def __post_init__(self) -> None:
        self.deadline = self.deadline or self.clock() + self.scenario.timeout
        self.prefix = self.prefix or f"labctl-{self.run_id[:8]}-{slug(self.scenario.name)}"

    def name(self, role: str) -> str:
        """The engine name of this scenario's object ``role``: ``labctl-RUN8-SCENARIO-ROLE``."""
        return f"{self.prefix}-{role}"

    def labels(self, role: str, user: dict[str, str] | None = None) -> dict[str, str]:
        """``labels_for`` this run, scenario and ``role`` (LabctlError for reserved user labels)."""
        return labels_for(self.run_id, self.scenario.name, role, user, keep=self.keep)

    def selector(self, role: str | None = None) -> dict[str, str]:
        """The labels selecting this scenario's objects (all, or one role's)."""
        return selector(self.run_id, self.scenario.name, role)

    def remaining(self) -> float:
        """Seconds left until the scenario deadline (may be negative)."""
        return self.deadline - self.clock()

    def check_cancel(self) -> None:
        """Raise Interrupted if the run was cancelled (a signal, another worker's interrupt)."""
        if self.cancel.is_set():
            raise Interrupted()
