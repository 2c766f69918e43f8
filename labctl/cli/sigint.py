"""SIGINT for labctl's long-running sessions (the pytest plugin): heard even when it was
inherited ignored (held off while a run's objects are removed: ``runtime.signals``).

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
