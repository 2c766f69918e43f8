"""Parsing of the durations and sizes that scenario files and flags accept."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DUR_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_duration(value: object) -> float:
    """Return seconds for ``100ms``, ``2s``, ``1.5m``, ``1h`` or a bare number of seconds.

    Raises ValueError with a message fit for the user.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 500ms or 2s, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DUR_FACTOR[m.group(2)]
    raise ValueError(f"expected a duration such as 500ms or 2s, got {value!r}")


def parse_size(value: object) -> int:
    """Return bytes for ``64``, ``64k``, ``64m``, ``1g`` (binary multiples, as Docker's shm_size).

    Raises ValueError with a message fit for the user.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 64m or 1g, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value!r}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = (m.group(2) or "").lower()[:1]
            return int(m.group(1)) * _SIZE_FACTOR[unit]
    raise ValueError(f"expected a size such as 64m or 1g, got {value!r}")
