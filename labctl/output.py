"""What labctl observes of a container: its exit status and its growing output.

Pure Python (no engine import), so checks and their unit tests can use it with fakes;
``labctl.runtime`` feeds it from the engine.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended: ``code`` as the engine reports it (128+N for signal N)."""

    code: int
    oom_killed: bool = False
    error: str = ""

    @property
    def signal(self) -> int | None:
        return self.code - 128 if 128 < self.code < 160 else None



class Output:
    """The growing output of one container: lines per stream, and the JSON events on stdout.

    A reader thread appends; waiters block on ``changed`` (a Condition) with a deadline.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.events: list[dict] = []
        self.closed = False
        self._partial = {"stdout": "", "stderr": ""}

    def feed(self, stream: str, chunk: bytes) -> None:
        text = self._partial[stream] + chunk.decode("utf-8", errors="replace")
        *lines, self._partial[stream] = text.split("\n")
        if lines:
            with self.changed:
                self._add(stream, lines)
                self.changed.notify_all()

    def _add(self, stream: str, lines: list[str]) -> None:
        target = self.stdout if stream == "stdout" else self.stderr
        for line in lines:
            target.append(line)
            if stream == "stdout" and line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.events.append(event)

    def close(self) -> None:
        with self.changed:
            for stream, rest in self._partial.items():
                if rest:
                    self._add(stream, [rest])
                    self._partial[stream] = ""
            self.closed = True
            self.changed.notify_all()

    def reopen(self) -> None:
        """The container runs again (a restart/start after an exit): later lines append
        to the same lists, so a role's output spans all its runs."""
        with self.changed:
            self.closed = False
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], deadline: float, clock: Callable[[], float] = time.monotonic) -> bool:
        """Block until ``predicate()`` is true (checked under the lock on every change)
        or ``deadline`` (a ``clock`` time) passes; returns the last value of the predicate."""
        with self.changed:
            while True:
                if predicate():
                    return True
                left = deadline - clock()
                if left <= 0 or self.closed:
                    return predicate()
                self.changed.wait(min(left, 1.0))

    def tail(self, n: int = 20) -> str:
        with self.changed:
            lines = [f"{line}" for line in self.stdout[-n:]] + [f"[stderr] {line}" for line in self.stderr[-n:]]
        return "\n".join(lines[-n:])
