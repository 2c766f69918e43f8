"""Incremental tallies over a container's output: what checks and start conditions look at.

Each tally is registered on an ``Output`` before its container starts and is fed every
new line or event exactly once, in the reader thread, under the output's lock. It keeps
a constant amount of state (counts, a few sample values, the first hit), so a check on a
program that prints millions of events costs one pass and no memory growth, and
judging it is reading a few numbers. No engine import.
"""

from __future__ import annotations

import re
from itertools import compress
from typing import Any

from labctl.runtime.jsonlines import EventBatch
from labctl.runtime.logs import Output

_NUMBERS = {int, float}
SAMPLE = 20  # values of a ``rising`` field kept for the report (the first ones, and the last)


def _numeric(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _first_not_rising(before: object, values: list[object]) -> tuple[object, object] | None:
    """The first pair (a, b) of ``before`` (the previous batch's last value, None if none)
    followed by ``values`` where b is not a number or b <= a; None if they strictly rise."""
    seq = values if before is None else [before, *values]
    first = seq[0]
    # A counter's consecutive integers: equal to their range only if each is that integer (or
    # a float of its value; the booleans equal 0 and 1 only, hence from 2 up), in C.
    if type(first) is int and first >= 2 and seq == list(range(first, first + len(seq))):
        return None
    try:
        # fast path, in C: strictly rising numbers are their own sorted set (bool excluded)
        if set(map(type, seq)) <= _NUMBERS and seq == sorted(set(seq)):
            return None
    except TypeError:
        pass
    prev: object = before
    for i, v in enumerate(values):
        if not _numeric(v) or (i > 0 or before is not None) and v <= prev:  # type: ignore[operator]
            return (prev, v)
        prev = v
    return None


def _made(ref: tuple[EventBatch, int] | None) -> dict | None:
    return None if ref is None else ref[0][ref[1]]


class EventTally:
    """Events named ``event`` whose fields satisfy ``where`` (pairs of name and an object
    with ``holds(value)``); with ``rising``, whether that field strictly increases across
    the matching ones. Also the last ``error`` event, for failure messages."""

    def __init__(self, event: str, where: tuple[tuple[str, Any], ...] = (), rising: str | None = None) -> None:
        self.event = event
        self.where = where
        self.rising = rising
        self.named = 0
        self.matched = 0
        # the last match and the last error: (batch, index), made a dict when read
        self._last_matched: tuple[EventBatch, int] | None = None
        self._last_error: tuple[EventBatch, int] | None = None
        self.values: list[object] = []  # the first SAMPLE values of ``rising``
        self.last_value: object = None
        self.not_rising: tuple[object, object] | None = None  # the first pair that broke it

    @property
    def last_matched(self) -> dict | None:
        return _made(self._last_matched)

    @property
    def last_error(self) -> dict | None:
        return _made(self._last_error)

    def attach(self, out: Output) -> "EventTally":
        fields = tuple(name for name, _ in self.where) + ((self.rising,) if self.rising else ())
        out.watch_events(self._on_event, self.event, fields)
        if self.event != "error":
            out.watch_events(self._on_error, "error")
        return self

    def _on_error(self, events: EventBatch) -> None:
        self._last_error = (events, -1)

    def _on_event(self, events: EventBatch) -> None:
        self.named += len(events)
        if self.event == "error":
            self._last_error = (events, -1)
        keep = None
        if self.where:
            exps = [exp for _, exp in self.where]
            cols = [events.column(name) for name, _ in self.where]
            keep = [all(exp.holds(v) for exp, v in zip(exps, vals)) for vals in zip(*cols)]
            matched = sum(keep)
            if not matched:
                return
            self.matched += matched
            self._last_matched = (events, len(keep) - 1 - keep[::-1].index(True))
        else:
            self.matched += len(events)
            self._last_matched = (events, -1)
        if self.rising is None:
            return
        values = events.column(self.rising)
        if keep is not None:
            values = list(compress(values, keep))
        if len(self.values) < SAMPLE:
            self.values += values[:SAMPLE - len(self.values)]
        if self.not_rising is None:
            self.not_rising = _first_not_rising(self.last_value if self.matched > len(values) else None, values)
        self.last_value = values[-1]

    def rising_text(self) -> str:
        """``1, 2, 3 ... 3000000`` (the kept sample and the last value)."""
        shown = ", ".join(str(v) for v in self.values)
        if self.matched > len(self.values):
            shown += f" ... {self.last_value}"
        return shown


class LineSearch:
    """The first line of ``streams`` matching ``pattern`` (``re.search`` on each line), and
    how many lines were looked at. Once a line matched, later lines cost nothing.

    A batch is searched as one text (``re.MULTILINE``, so ``^``/``$`` still mean a line's
    start and end) and only a candidate's line is searched on its own: patterns that could
    see past a line's end differently (``\\A``, ``\\Z``, lookarounds) go line by line. A
    pattern that is plain text (``re.escape`` leaves it as it is) is looked for with
    ``bytes.find`` in the undecoded lines, about twice as fast on a flood as the regular
    expression's search: UTF-8 text occurs in bytes exactly where it occurs in their
    decoding with replacement, unless it holds the replacement character (U+FFFD) itself."""

    def __init__(self, pattern: str, streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
        self.rx = re.compile(pattern)
        self.streams = streams
        self.hit: str | None = None
        self.searched = 0
        per_line = any(t in pattern for t in ("\\A", "\\Z", "\\z", "(?<", "(?=", "(?!"))
        self._block = None if per_line else re.compile(pattern, self.rx.flags | re.MULTILINE)
        self._text = pattern if pattern and re.escape(pattern) == pattern else None
        self._needle: bytes | None = None  # the plain text's UTF-8 form, looked for in the bytes
        if self._text is not None and "\ufffd" not in self._text:
            try:
                self._needle = self._text.encode()
            except UnicodeEncodeError:  # a lone surrogate: only its decoded form can hold it
                pass

    def attach(self, out: Output) -> "LineSearch":
        out.watch_lines(self._on_lines, self.streams)
        return self

    def _on_lines(self, _stream: str, block: bytes, n: int) -> None:
        if self.hit is not None:
            return
        if self._needle is not None:
            self._in_bytes(block, n)
        elif self._block is None:
            self._line_by_line(block.decode("utf-8", errors="replace").split("\n"))
        else:
            self._by_block(block.decode("utf-8", errors="replace"), n)

    def _in_bytes(self, block: bytes, n: int) -> None:
        """Look for the plain text in ``block``: ``n`` complete lines joined by ``\\n``."""
        assert self._needle is not None
        at = block.find(self._needle)
        if at < 0:
            self.searched += n
            return
        start = block.rfind(b"\n", 0, at) + 1
        end = block.find(b"\n", at)
        self.hit = block[start:end if end >= 0 else len(block)].decode("utf-8", errors="replace")
        self.searched += block.count(b"\n", 0, start) + 1

    def _line_by_line(self, lines: list[str]) -> None:
        search = self.rx.search
        for i, line in enumerate(lines):
            if search(line):
                self.hit = line
                self.searched += i + 1
                return
        self.searched += len(lines)

    def _candidate(self, text: str, pos: int) -> int:
        """Where the next match in ``text`` from ``pos`` begins, -1 if none."""
        if self._text is not None:
            return text.find(self._text, pos)
        assert self._block is not None
        m = self._block.search(text, pos)
        return -1 if m is None else m.start()

    def _by_block(self, text: str, n: int) -> None:
        """Search ``text``: ``n`` complete lines joined by ``\\n``."""
        pos = 0
        while (at := self._candidate(text, pos)) >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            if self.rx.search(text[start:end]):  # the candidate's own line (a match may span lines)
                self.hit = text[start:end]
                self.searched += text.count("\n", 0, start) + 1
                return
            if end >= len(text):
                break
            pos = end + 1
        self.searched += n


class EventSeen:
    """Whether an event named ``event`` appeared (a start condition ``after: {c: attached}``)."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.seen: dict | None = None

    def attach(self, out: Output) -> "EventSeen":
        out.watch_events(self._on_event, self.event)
        return self

    def _on_event(self, events: list[dict]) -> None:
        if self.seen is None:
            self.seen = events[0]


MAX_IDS = 4096


class CreatedObjects:
    """The IPC objects a workload reported holding: the ids in its ``attached`` events
    (``shmid``, ``semid``, ``msqid``, and ``mq_name`` for a POSIX message queue) and the
    POSIX shm names of its ``opened`` events (``name``, as ``shm_name``). At most MAX_IDS
    of each kind."""

    KINDS = ("shmid", "semid", "msqid", "mq_name", "shm_name")

    def __init__(self) -> None:
        self.ids: dict[str, set] = {k: set() for k in self.KINDS}

    def attach(self, out: Output) -> "CreatedObjects":
        out.watch_events(self._on_attached, "attached")
        out.watch_events(self._on_opened, "opened")
        return self

    def _add(self, kind: str, v: object) -> None:
        found = self.ids[kind]
        if v is not None and not isinstance(v, (dict, list)) and len(found) < MAX_IDS:
            found.add(v)

    def _on_attached(self, events: list[dict]) -> None:
        for e in events:
            for kind in ("shmid", "semid", "msqid", "mq_name"):
                self._add(kind, e.get(kind))

    def _on_opened(self, events: list[dict]) -> None:
        for e in events:
            if isinstance(e.get("name"), str):
                self._add("shm_name", e["name"])
