"""Field values: what an expectation may say about a field, and what the probe's JSON means.

``coerce`` runs at validation: it checks an expectation against the field's C type (a
string for ``char[N]``, hex of the right length for bytes, an enumerator name for an
enum, a value that fits the integer's range...) and returns the value to compare with.
``decode`` runs on the probe's output, so both sides of a comparison have one form:
floats of 4 bytes are compared as 32-bit floats, bytes as ``0x`` + lowercase hex.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from labctl.layout.laid_out import LayoutError, Leaf

ORDERING = ("lt", "le", "gt", "ge")


def _f32(v: float) -> float:
    try:
        return float(struct.unpack("<f", struct.pack("<f", v))[0])
    except OverflowError:
        return math.copysign(math.inf, v)


def _range(leaf: Leaf) -> tuple[int, int]:
    bits = 8 * leaf.size
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if leaf.kind == "i" else (0, 2**bits - 1)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(leaf: Leaf, op: str, value: Any) -> Any:
    """The value an expectation ``op`` compares ``leaf`` with, checked against its type.

    ``op`` is eq ne lt le gt ge match or approx (value ``(x, tol)``). Raises LayoutError
    with what the field is and what it accepts."""
    what = f"'{leaf.path}' is {leaf.ctype}"
    if op == "match":
        return value
    if op == "approx":
        if leaf.kind != "f":
            raise LayoutError(f"{what}: approx compares floating-point fields only")
        return value
    if leaf.kind in ("i", "u"):
        if isinstance(value, str) and leaf.enum:
            names = dict(leaf.enum)
            if value not in names:
                raise LayoutError(f"{what}: no enumerator {value!r} (expected one of "
                                  f"{', '.join(n for n, _ in leaf.enum)} or an integer)")
            value = names[value]
        elif isinstance(value, str) and re.fullmatch(r"0[xX][0-9a-fA-F]+", value):
            value = int(value, 16)
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "an integer or an enumerator name" if leaf.enum else "an integer (or 0x hex)"
            raise LayoutError(f"{what}: expected {hint}, got {value!r}")
        lo, hi = _range(leaf)
        if not lo <= value <= hi and op in ("eq", "ne"):
            raise LayoutError(f"{what}: {value} is out of its range {lo}..{hi}")
        return value
    if leaf.kind == "f":
        if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "+inf"):
            value = float(value)
        if not _number(value):
            raise LayoutError(f"{what}: expected a number, got {value!r}")
        value = float(value)
        return _f32(value) if leaf.size == 4 else value
    if op in ORDERING:
        raise LayoutError(f"{what}: '{op}' compares numbers; use eq, ne or match")
    if leaf.kind == "b":
        if value in (0, 1) and not isinstance(value, float):
            return bool(value)
        raise LayoutError(f"{what}: expected true or false, got {value!r}")
    if leaf.kind == "s":
        if _number(value) or isinstance(value, bool):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str):
            raise LayoutError(f"{what}: expected a string, got {value!r}")
        if len(value.encode()) > leaf.size:
            raise LayoutError(f"{what}: {value!r} is {len(value.encode())} bytes, more than the field holds")
        return value
    # x: hex bytes
    if not isinstance(value, str) or not re.fullmatch(r"(0[xX])?[0-9a-fA-F]*", value):
        raise LayoutError(f"{what}, read as hex: expected a string such as '0x{'00' * min(leaf.size, 4)}', "
                          f"got {value!r}")
    digits = value[2:] if value[:2].lower() == "0x" else value
    if len(digits) != 2 * leaf.size:
        raise LayoutError(f"{what} ({leaf.size} bytes): give {2 * leaf.size} hex digits, not {len(digits)} "
                          "(or use match)")
    return "0x" + digits.lower()


def decode(leaf: Leaf, raw: Any) -> Any:
    """The probe's JSON value of ``leaf`` in the form :func:`coerce` produced (None stays None)."""
    if raw is None:
        return None
    if leaf.kind == "f":
        v = float(raw) if isinstance(raw, (int, float, str)) else raw
        return _f32(v) if leaf.size == 4 and isinstance(v, float) else v
    if leaf.kind == "s" and isinstance(raw, str):
        # the probe escapes bytes >= 0x80 one by one (\u00XX): put UTF-8 text back together
        try:
            return raw.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return raw
    return raw


def show(leaf: Leaf, value: Any) -> str:
    """A value for messages: ``2 (GREEN)`` for an enum, repr otherwise."""
    if leaf.enum and isinstance(value, int):
        names = [n for n, v in leaf.enum if v == value]
        return f"{value} ({names[0]})" if names else f"{value} (no enumerator)"
    return repr(value)
