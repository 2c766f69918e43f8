"""Interrupts held off while engine work that must not be cut short runs: a container's
create (an interrupted create leaves one the engine makes after the sweep), a run's cleanup.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class interrupts_held:  # noqa: N801 - used as a context manager, named as one
    """``with interrupts_held() as held:`` a SIGINT (or any of ``signals``) inside the block
    is appended to ``held`` (a list of signal numbers) instead of handled, so the work is
    not cut short; the previous handlers are back on exit, and the caller acts on ``held``.
    Outside the main thread (no handlers there) it holds nothing."""

    def __init__(self, *signals: int) -> None:
        self.signals = signals or (signal.SIGINT,)

    def __enter__(self) -> list[int]:
        self.held: list[int] = []
        self.old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, lambda signum, _frame: self.held.append(signum)) for s in self.signals}
        return self.held

    def __exit__(self, *exc: object) -> None:
        for s, old in self.old.items():
            # None: the handler was not set from Python (none to restore): the default then
            signal.signal(s, signal.SIG_DFL if old is None else old)
