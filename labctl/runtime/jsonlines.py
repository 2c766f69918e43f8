"""The workloads' JSON lines: the one parser of them, and batches of events read by fields.

A workload prints one JSON object per line (``{"event": "wrote", "count": 3, ...}``).
``json_events`` reads a text's events (probes, the bench, the pytest plugin); ``Output``
(``labctl.runtime.logs``) reads a container's stream in batches with ``parse_values`` (a
dict per event) or ``record_decoder`` (records of a few fields, see "by fields" below)
and hands its watchers ``EventBatch``es. Pure Python, no engine import.
"""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import repeat
from operator import attrgetter
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal, Union

import msgspec
import orjson


def _json_int(text: str) -> int | float:
    """A JSON integer: exact, or past Python's limit on the digits ``int()`` converts (4300),
    the nearest float (inf past the double range)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _loads(line: str) -> object:
    """Parse one JSON text: orjson, and the standard library for what orjson refuses but
    Python's json reads (NaN, integers beyond 64 bits). Raises ValueError."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            return json.loads(line, parse_int=_json_int)
        except RecursionError:  # nested deeper than the interpreter's stack: not an event
            raise ValueError("JSON nested too deeply") from None


def parse_values(lines: list[str]) -> list:
    """The JSON values of ``lines`` (each starts with ``{``), in order: dicts, except that a
    malformed batch may yield other values (callers filter; ``Output`` only when it must).

    One orjson call parses the whole batch as an array (the per-line cost in Python is what
    limits throughput); when that fails or yields a different count (a line that is not
    one JSON object), each line is parsed on its own and the others skipped."""
    try:
        parsed = orjson.loads("[" + ",".join(lines) + "]")
        if len(parsed) == len(lines):
            return parsed
    except orjson.JSONDecodeError:
        pass
    return _parse_each(lines)


def parse_batch(lines: list[str]) -> list[dict]:
    """The JSON objects among ``lines`` (each starts with ``{``), in order."""
    parsed = parse_values(lines)
    return parsed if set(map(type, parsed)) <= {dict} else [e for e in parsed if type(e) is dict]


def _parse_each(lines: list[str]) -> list[dict]:
    """The JSON objects among ``lines``, each line parsed on its own (the others skipped)."""
    found = []
    for line in lines:
        try:
            event = _loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


def json_events(text: str, *, strip: bool = False) -> list[dict]:
    """The JSON events of a workload's output ``text``: every line that starts with ``{``
    (after trimming its whitespace when ``strip``) and parses to one JSON object, in order.
    The one parser of the workloads' JSON lines (``Output`` feeds batches of them here too)."""
    lines = text.splitlines()
    if strip:
        lines = [line.strip() for line in lines]
    return parse_batch([line for line in lines if line.startswith("{")])


def named(values: list) -> tuple[list[dict], set]:
    """The events among ``values`` (dicts) and their names; an event whose "event" value is
    unhashable names nothing, and then only events named by a string are kept."""
    events = [e for e in values if type(e) is dict]
    try:
        return events, set(map(dict.get, events, repeat("event")))
    except TypeError:  # an unhashable "event" value: not an event name
        events = [e for e in events if isinstance(e.get("event"), str)]
        return events, {e.get("event") for e in events}


# --------------------------------------------------------------------------- by fields
# A chatty workload's batch of events is read without making a dict per event: msgspec
# decodes each line into a small record holding only the fields the watchers declared
# (``watch_events(..., fields=)``) and the event's name, skipping the rest of the line
# (validated, not kept): about half orjson's cost, and the dicts are made later, from the
# lines, only for what a watcher looks at (the last match, a first occurrence).
#
# It must read exactly what the dict path reads, or fall back to it: so it takes only
# ASCII batches (orjson checks the UTF-8 of every string, msgspec not of a skipped one)
# whose every line starts with "{" and holds one JSON object, and the values both read
# alike: in a read field, an integer beyond 64 bits (orjson reads it as a float, msgspec
# exactly), a float beyond the double range, a list or an object (whose inside could hold
# such an integer); anywhere, nesting deeper than msgspec's stack: each makes the decode
# fail, and the batch goes the dict way.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]
_Value = Union[_Int64, float, str, bool, None]
NAME = attrgetter("f0")  # a record's "event"


@lru_cache(maxsize=64)
def record_decoder(fields: tuple[str, ...], sole: str | None = None) -> tuple[msgspec.json.Decoder, dict[str, attrgetter]]:
    """A decoder of a JSON array of objects into records of ``("event", *fields)`` (None
    where a field is absent, as ``dict.get`` gives), and each field's getter. With ``sole``,
    every object must be named ``sole`` (a DecodeError otherwise): a batch it decodes is
    known to hold that one name without looking at each record."""
    names = ("event", *fields)
    attrs = [f"f{i}" for i in range(len(names))]
    specs: list = [(a, _Value, None) for a in attrs]
    if sole is not None:
        specs[0] = (attrs[0], Literal[sole])  # required: a record without a name fails
    record = msgspec.defstruct("EventRecord", specs, rename=dict(zip(attrs, names)), gc=False)
    return msgspec.json.Decoder(list[record]), {n: attrgetter(a) for n, a in zip(names, attrs)}


class Block:
    """One batch of event lines read by fields: the records, and the lines to make a dict of
    an event from when a watcher asks for one (stamped with the batch's ``run``)."""

    __slots__ = ("data", "rows", "run", "getters", "_lines")

    def __init__(self, data: bytes, rows: list, run: int, getters: dict[str, attrgetter]) -> None:
        self.data, self.rows, self.run, self.getters = data, rows, run, getters
        self._lines: list[str] | None = None

    def dicts(self, at: Sequence[int] | None) -> list[dict]:
        """The events at line indexes ``at`` (every line if None), as dicts."""
        if at is None:
            lines = self.lines()
        elif len(at) == 1 and at[0] == len(self.rows) - 1:  # the last line: no split
            lines = [self.data[self.data.rfind(b"\n") + 1:].decode("ascii")]
        else:
            every = self.lines()
            lines = [every[i] for i in at]
        made = parse_values(lines)
        run = self.run
        for e in made:
            e["run"] = run
        return made

    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.data.decode("ascii").split("\n")
        return self._lines


class EventBatch(Sequence):
    """The events of one watcher's batch, in order: a sequence of dicts (each with ``run``).

    Made from dicts (the general path) or from records (a chatty workload's batches, see
    "by fields" above), where ``column`` gives the values of one declared field without
    making the dicts, and indexing or iterating makes only the dicts it returns."""

    __slots__ = ("_dicts", "_block", "_rows", "_at")

    def __init__(self, dicts: list[dict] | None = None, block: Block | None = None,
                 rows: list | None = None, at: list[int] | None = None) -> None:
        self._dicts, self._block, self._rows, self._at = dicts, block, rows, at

    def __len__(self) -> int:
        return len(self._dicts if self._dicts is not None else self._rows)

    def __getitem__(self, i):  # type: ignore[override]
        if self._dicts is not None:
            return self._dicts[i]
        if isinstance(i, slice):
            return self.all()[i]
        n = len(self._rows)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        return self._block.dicts([self._at[i] if self._at is not None else i])[0]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.all())

    def all(self) -> list[dict]:
        """Every event, as dicts (made once)."""
        if self._dicts is None:
            self._dicts = self._block.dicts(self._at)
        return self._dicts

    def column(self, field: str) -> list:
        """``field``'s value in each event, in order (None where it is absent); ``run`` is
        the run labctl stamped on the event, whatever the line held."""
        if self._block is not None:
            if field == "run":
                return [self._block.run] * len(self._rows)
            if field in self._block.getters:
                return list(map(self._block.getters[field], self._rows))
        return list(map(dict.get, self.all(), repeat(field)))
