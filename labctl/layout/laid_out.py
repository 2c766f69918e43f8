"""Laid-out C types and addressing into them (``a.b``, ``v[2]``, ``m[1][0]``).

A type here is already laid out for one ABI: every record member carries its offset.
:func:`resolve` turns a field path into a :class:`Leaf` the probe can read.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# What the probe reads (see images/shmlab/probe.c, --layout):
#   i signed integer (1, 2, 4, 8 bytes)   u unsigned integer / address
#   f IEEE float (4 or 8)                 b _Bool (1)
#   s NUL-terminated string of N bytes    x N bytes as hex
KINDS = ("i", "u", "f", "b", "s", "x")


class LayoutError(Exception):
    """A struct cannot be laid out, or a field path does not address a readable field.

    ``where`` is ``FILE:LINE:COL`` of the C declaration at fault when known."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


@dataclass(frozen=True)
class Scalar:
    """An integer, float, _Bool, enum or pointer. ``kind`` is one of :data:`KINDS` (i u f b);
    ``enum`` lists (name, value) for an enum type."""

    kind: str
    size: int
    align: int
    cname: str
    enum: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Array:
    """``elem[count]``; ``count`` 0 for a flexible array member (nothing to read)."""

    elem: CType
    count: int
    size: int
    align: int
    cname: str


@dataclass(frozen=True)
class Member:
    """A record member at ``offset``; ``name`` None for an anonymous struct/union."""

    name: str | None
    offset: int
    type: CType


@dataclass(frozen=True)
class Record:
    """A struct or union (``kind``; ``layout`` for an explicit field list), laid out: members with offsets, total size, alignment."""

    kind: str
    tag: str
    members: tuple[Member, ...]
    size: int
    align: int

    @property
    def cname(self) -> str:
        if self.kind == "layout":
            return "the layout"  # an explicit field list
        return f"{self.kind} {self.tag}" if self.tag else f"anonymous {self.kind}"


CType = Scalar | Array | Record


@dataclass(frozen=True)
class Leaf:
    """One readable field: its path, byte offset, probe kind and size, the C type it came
    from (for messages) and, for an enum, its enumerators."""

    path: str
    offset: int
    kind: str
    size: int
    ctype: str
    enum: tuple[tuple[str, int], ...] = ()

    def probe_item(self) -> str:
        """``PATH:OFFSET:KIND:SIZE``, one item of the probe's ``--layout``."""
        return f"{self.path}:{self.offset}:{self.kind}:{self.size}"


def is_text(t: CType) -> bool:
    """``char[N]`` (plain char): read as a NUL-terminated string."""
    return isinstance(t, Array) and isinstance(t.elem, Scalar) and t.elem.cname == "char" and not t.elem.enum


def is_bytes(t: CType) -> bool:
    """``unsigned char[N]`` (and ``uint8_t[N]``): read as hex."""
    return isinstance(t, Array) and isinstance(t.elem, Scalar) and t.elem.cname == "unsigned char"


_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*$")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]")


def parse_path(path: str) -> list[str | int]:
    """``a.b[2][0].c`` -> ["a", "b", 2, 0, "c"]; raises LayoutError for anything else."""
    if not _PATH.match(path):
        raise LayoutError(f"invalid field path {path!r} (expected NAME, a.b or name[i])")
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(path)]


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close, else the choices (at most 12)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    more = ", ..." if len(choices) > 12 else ""
    return f" (fields: {', '.join(choices[:12])}{more})"


def member_names(rec: Record) -> list[str]:
    """The names addressable directly in ``rec`` (anonymous members' names included)."""
    out: list[str] = []
    for m in rec.members:
        if m.name is None and isinstance(m.type, Record):
            out += member_names(m.type)
        elif m.name is not None:
            out.append(m.name)
    return out


def find_member(rec: Record, name: str) -> tuple[int, CType] | None:
    for m in rec.members:
        if m.name == name:
            return m.offset, m.type
        if m.name is None and isinstance(m.type, Record):
            found = find_member(m.type, name)
            if found is not None:
                return m.offset + found[0], found[1]
    return None


def _describe(t: CType) -> str:
    if isinstance(t, Array):
        return t.cname
    return t.cname


def resolve(root: Record, path: str) -> Leaf:
    """The readable field at ``path`` in ``root``. Raises LayoutError saying what is there
    instead (a struct to go into, an array to index, an index out of range...)."""
    steps = parse_path(path)
    t: CType = root
    off = 0
    done = ""
    for step in steps:
        if isinstance(step, str):
            if not isinstance(t, Record):
                raise LayoutError(f"'{done}' is {_describe(t)}, it has no member '{step}'")
            found = find_member(t, step)
            if found is None:
                names = member_names(t)
                where = f"'{done}' ({t.cname})" if done else t.cname
                raise LayoutError(f"no field '{step}' in {where}" + (did_you_mean(step, names) if names else ""))
            off += found[0]
            t = found[1]
            done = f"{done}.{step}" if done else step
        else:
            if not isinstance(t, Array):
                raise LayoutError(f"'{done}' is {_describe(t)}, not an array: it cannot be indexed")
            if t.count == 0:
                raise LayoutError(f"'{done}' is a flexible array member: its length is not in the type")
            if step >= t.count:
                raise LayoutError(f"index {step} is out of range for '{done}' ({t.cname}: 0..{t.count - 1})")
            off += step * t.elem.size
            t = t.elem
            done = f"{done}[{step}]"
    if isinstance(t, Scalar):
        return Leaf(path, off, t.kind, t.size, t.cname, t.enum)
    if is_text(t):
        assert isinstance(t, Array)
        if t.count == 0:
            raise LayoutError(f"'{path}' is a flexible array member: its length is not in the type")
        return Leaf(path, off, "s", t.count, t.cname)
    if is_bytes(t):
        assert isinstance(t, Array)
        if t.count == 0:
            raise LayoutError(f"'{path}' is a flexible array member: its length is not in the type")
        return Leaf(path, off, "x", t.count, t.cname)
    if isinstance(t, Array):
        return _not_leaf(path, f"an array ({t.cname}); address an element as {path}[0]")
    return _not_leaf(path, f"{t.cname}; address a member as {path}.{(member_names(t) or ['x'])[0]}")


def _not_leaf(path: str, what: str) -> Leaf:
    raise LayoutError(f"'{path}' is {what}")
