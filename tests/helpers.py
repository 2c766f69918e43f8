"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

INVALID = Path(__file__).resolve().parent / "data" / "invalid"


def wait_until(predicate: Callable[[], bool], timeout: float, clock: Callable[[], float] = time.monotonic,
               pause: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed (a bounded wait on state,
    not a sleep standing in for an event); returns its last value."""
    deadline = clock() + timeout
    while True:
        if predicate():
            return True
        if clock() >= deadline:
            return False
        time.sleep(pause)


def expected_errors() -> dict[str, str]:
    """tests/data/invalid/expected.txt: invalid fixture name -> its exact first error line."""
    out = {}
    for line in (INVALID / "expected.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, first = line.split("\t", 1)
            out[name] = first
    return out
