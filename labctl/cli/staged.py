"""Images a run needs beyond the engine's own workload image, built while scenarios run.

A library run needs the workload image of the engine's platform for nearly every
scenario, and a few more images for a few: other platforms' workload images (linux/386
for the mixed-width scenarios; zig builds musl for each target first, half a minute or
more) and example programs (``image: labctl/sensor``). ``split`` puts the scenarios that
need only the engine's own image first; ``Background`` builds the others' images in a
thread while those run, and they run once it is done. The first result comes as soon as
the engine's own image exists, and the extra builds overlap the run instead of preceding
it. A build failure still ends the run with exit 3 (``BuildError``) when it is waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from labctl.scenario.model import Scenario

T = TypeVar("T")
POLL_S = 0.5  # the main thread's wait wakes this often, so Ctrl-C is never held up


def needs_extra_images(s: Scenario, native: str) -> bool:
    """True when ``s`` runs a workload on another platform than ``native`` or an example image."""
    from labctl.images import examples

    return (any(c.platform and c.workload and c.platform != native for c in s.containers)
            or bool(examples.referenced(c.image for c in s.containers if c.image)))


def split(scenarios: list[Scenario], native: str) -> tuple[list[Scenario], list[Scenario]]:
    """(scenarios that need only the engine's own workload image, the others), order kept."""
    later = [s for s in scenarios if needs_extra_images(s, native)]
    return [s for s in scenarios if s not in later], later


class Background(Generic[T]):
    """``fn()`` in a daemon thread (an interrupt never waits for a compiler to finish);
    ``result()`` waits for it and returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], T], name: str = "labctl-images") -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            self._error = e
        finally:
            self._done.set()

    def result(self, cancel: threading.Event | None = None) -> T:
        """The value; re-raises what ``fn`` raised. Returns early (None) when ``cancel`` is set."""
        while not self._done.wait(POLL_S):
            if cancel is not None and cancel.is_set():
                return None  # type: ignore[return-value]
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
