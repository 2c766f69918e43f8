"""SIGINT for labctl's long-running sessions (the pytest plugin): heard even when it was
inherited ignored, and held off while a run's objects are being removed.

Python installs its KeyboardInterrupt handler only when SIGINT's disposition is the
default at start. bash starts the background jobs of a non-interactive shell (a CI
script's ``pytest ... &``) with SIGINT ignored, and every process below inherits that:
such a session would run its scenarios to their end whatever Ctrl-C or ``kill -INT``
it got. ``labctl run`` installs its own handler, so it is not affected.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


def heed_sigint() -> Callable[[], None] | None:
    """If SIGINT is ignored in this process, make it raise KeyboardInterrupt (Python's
    default handler) and return the function that ignores it again; else None. Only in
    the main thread (signal handlers live there); elsewhere it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        return None
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return restore


class interrupts_held:  # noqa: N801 - used as a context manager, named as one
    """``with interrupts_held() as held:`` a SIGINT inside the block is appended to
    ``held`` (a list of signal numbers) instead of raising, so a cleanup is not cut short;
    the previous handler is back on exit. Outside the main thread it holds nothing."""

    def __enter__(self) -> list[int]:
        self.held: list[int] = []
        self.old: Any = None
        self.main = threading.current_thread() is threading.main_thread()
        if self.main:
            self.old = signal.signal(signal.SIGINT, lambda signum, _frame: self.held.append(signum))
        return self.held

    def __exit__(self, *exc: object) -> None:
        if self.main:
            # None: the handler was not set from Python (none to restore): the default then
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.old is None else self.old)
