"""Integration tests side by side (pytest-xdist workers) and the ones that must run alone.

Every integration test runs inside its leak guard's window (before-snapshot, the test,
after-check). Two tests on two workers may overlap freely when each one's objects are
recognisably its own: labelled with a live owner pid (labctl's own runs, the tests'
containers, compose projects named ``labctltest-<pid>-``, the manifests the Kubernetes
tests play), or used by a live process. A test marked ``alone`` creates what another
test's guard would take for its own leak, or removes what is not its own, so no other test
may be inside its window meanwhile:

* objects in the host's IPC namespace (``ipc: host``, the host's /dev/shm, the bench's
  host pairs), which carry no owner;
* engine objects whose owner pid is gone on purpose (``run --keep``, a SIGKILLed labctl)
  or that have none (a pod played from an export as it is);
* ``labctl clean`` without ``--run``, which removes every managed object.

The rule is a readers-writer lock on a file that the workers of one session share
(``flock``, in the session's base temporary folder): a test takes it shared, an ``alone``
test exclusively. A writer announces itself on a second lock first, so a stream of shared
holders cannot starve it. A run of ``alone`` tests on one worker (a module marked alone
whole, as test_reliability.py) is one window: the lock is kept from one to the next instead
of being given back and waited for again after whatever test another worker started in
between. Without xdist there is one process and the lock is never contended. Fixtures
(session and module scope) are set up outside any test's window: what they start must carry
a live owner (the library runs: labctl's pid).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_lock_dir: Path | None = None  # set once per worker: the session's shared folder, or None (one process)
_held: str | None = None  # "shared" or "alone" while this process holds the lock
_kept: tuple[int, int] | None = None  # an "alone" lock kept for this process's next test


def configure(folder: Path | None) -> None:
    """Share the lock through ``folder`` (under xdist: the session's base temporary folder,
    which every worker's own lies in); None: not under xdist, nothing to share."""
    global _lock_dir
    _lock_dir = folder


def _open(name: str) -> int:
    assert _lock_dir is not None
    return os.open(_lock_dir / name, os.O_RDWR | os.O_CREAT, 0o600)


@contextmanager
def hold(mode: str, keep: bool = False) -> Iterator[None]:
    """Hold the session's lock in ``mode``: "shared" (beside other tests) or "alone" (no
    other test in its window). Nested in a hold of this process: a no-op when the outer
    hold covers it; "alone" inside "shared" is an error (it would wait on itself).
    ``keep`` (alone only): the lock is not given back at the end but kept for this process's
    next hold, which takes it over if it is alone too; a shared hold, or :func:`give_back`,
    gives it back first."""
    global _held, _kept
    if mode not in ("shared", "alone"):
        raise ValueError(f"mode {mode!r}: 'shared' or 'alone'")
    if _held is not None:
        if _held == "shared" and mode == "alone":
            raise RuntimeError("work that must run alone was started inside a test that holds the lock shared: "
                               "mark the test `alone`, or start the work from a fixture set up before the guard")
        yield
        return
    if mode == "alone" and _kept is not None:
        fds, _kept = _kept, None
    else:
        give_back()
        fds = _acquire(mode) if _lock_dir is not None else ()  # one process: nothing to share
    _held = mode
    try:
        yield
    finally:
        _held = None
        if keep and mode == "alone" and fds:
            _kept = fds
        else:
            _close(fds)


def give_back() -> None:
    """Give back an alone lock kept by :func:`hold` (``keep=True``); nothing if none is."""
    global _kept
    fds, _kept = _kept, None
    _close(fds or ())


def _close(fds: tuple[int, ...]) -> None:
    for fd in fds:
        os.close(fd)  # closing the last descriptor of a file releases its flock


def _acquire(mode: str) -> tuple[int, int]:
    """Take the session's lock in ``mode``; the open (turnstile, main) descriptors, whose
    closing releases it."""
    turnstile, main = _open("turnstile"), _open("main")
    try:
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # waits behind a writer that announced itself
        if mode == "alone":
            fcntl.flock(main, fcntl.LOCK_EX)  # waits for the shared holders to leave
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(main, fcntl.LOCK_SH)
    except BaseException:
        os.close(main)
        os.close(turnstile)
        raise
    return turnstile, main
