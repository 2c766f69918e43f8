"""What every part of one scenario's run shares: the engine, the scenario, names, labels,
the scenario deadline and the cancel flag."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from labctl.images import platforms
from labctl.errors import Interrupted, LabctlError
from labctl.runtime.labels import labels_for, selector
from labctl.runtime.engine import Engine
from labctl.scenario.model import ContainerSpec, Scenario

Progress = Callable[[str], None]


def slug(text: str) -> str:
    """``text`` as an engine object name part. Not truncated: two long names sharing a
    prefix must not share objects (scenario names are at most 63 characters)."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text)


@dataclass
class RunContext:
    """One scenario on one engine. ``deadline`` is on ``clock`` (monotonic seconds).
    ``image``: the workload image of the engine's own platform (probes and helpers run
    it); ``images``: platform -> workload image for containers on other platforms;
    ``platform``: the platform of workload containers that name none (None: the engine's)."""

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
    images: dict[str, str] = field(default_factory=dict)
    platform: str | None = None

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

    def platform_of(self, c: ContainerSpec) -> str | None:
        """The platform container ``c`` runs on: its own ``platform:``, else for a workload
        the run's ``--platform``; None: the engine's own (an image of the user's keeps its own)."""
        return c.platform or (self.platform if c.workload else None)

    def emulated(self, platform: str | None) -> bool:
        """True when ``platform`` runs under qemu on this engine (one ``docker info``, cached)."""
        if platform is None:
            return False
        plat = platforms.lookup(platform)
        return plat is not None and not platforms.is_native(plat, self.engine.architecture())

    def any_emulated(self) -> bool:
        """True when one of the scenario's containers runs under emulation."""
        return any(self.emulated(self.platform_of(c)) for c in self.scenario.containers)

    def workload_image(self, platform: str | None) -> str:
        """The workload image for ``platform`` (None: the engine's own). LabctlError when
        the run was not given one (the CLI builds every platform its scenarios name)."""
        if platform is None:
            return self.image
        try:
            return self.images[platform]
        except KeyError:
            raise LabctlError(f"no workload image for platform {platform} in this run "
                              f"(built: {', '.join(sorted(self.images)) or 'none'})") from None

    def remaining(self) -> float:
        """Seconds left until the scenario deadline (may be negative)."""
        return self.deadline - self.clock()

    def check_cancel(self) -> None:
        """Raise Interrupted if the run was cancelled (a signal, another worker's interrupt)."""
        if self.cancel.is_set():
            raise Interrupted()
