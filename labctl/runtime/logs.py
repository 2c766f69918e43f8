"""What labctl observes of a container: its exit status and its output, in bounded memory.

Pure Python (no engine import), so checks and their unit tests can use it with fakes;
``labctl.runtime`` feeds it from the engine.

A container may print millions of lines. ``Output`` keeps only what is bounded: the last
``tail_lines`` lines of each stream (for reports and failure messages), line counts, and
the first event of each name (``first``). Everything else is *consumed as it arrives* by
watchers registered before the container starts (``watch_events``, ``watch_lines``):
each check keeps its own small tally, fed once per line, and never rescans the output.

A container that runs again (a restart, a start after a stop) keeps one Output: every
event gets ``run`` (1 for the first run, 2 after the first restart...) before any watcher
sees it. A run begins at ``new_run()`` (labctl starts the container again) or at a second
``start`` event of the workload within one run (a restart by the engine's restart policy,
whose lines arrive from the engine's log). ``run_first`` keeps the first event of each
name in the current run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import compress, repeat
from operator import eq
from typing import Callable

import msgspec
import orjson

from labctl.runtime.jsonlines import (
    NAME,
    Block,
    EventBatch,
    named,
    parse_batch,
    parse_values,
    record_decoder,
)

TAIL_LINES = 1000  # kept per stream, for failure messages and reports
MAX_FIRST = 256  # distinct event names whose first occurrence is kept

EventFn = Callable[[EventBatch], None]
LineFn = Callable[[str, bytes, int], None]  # (stream, a batch's complete lines joined by b"\n", how many)


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended: ``code`` as the engine reports it (128+N for signal N)."""

    code: int
    oom_killed: bool = False
    error: str = ""

    @property
    def signal(self) -> int | None:
        return self.code - 128 if 128 < self.code < 160 else None


class Output:
    """The output of one container as it grows, in bounded memory.

    A reader thread calls ``feed`` with raw chunks; lines are split on ``\\n`` (a line cut
    between chunks is joined, UTF-8 decoded with replacement when read as text). A
    stdout line starting with ``{`` is a JSON event when it parses to an object. Watchers
    run in the feeding thread, under ``changed`` (a Condition), before waiters are woken;
    ``version`` counts the feeds that added lines, so a waiter can tell "something new"
    without looking.
    """

    def __init__(self, tail_lines: int = TAIL_LINES) -> None:
        self.changed = threading.Condition()
        # Retained lines as the blocks of bytes they came in, with their line counts, oldest
        # first: only as many blocks as hold the last ``tail_lines`` lines, decoded when read.
        self._tail: dict[str, deque[tuple[bytes, int]]] = {"stdout": deque(), "stderr": deque()}
        self._tail_kept = {"stdout": 0, "stderr": 0}  # lines in those blocks
        self._tail_lines = tail_lines
        self.line_counts = {"stdout": 0, "stderr": 0}
        self.first: dict[str, dict] = {}  # event name -> its first occurrence
        self.version = 0
        self.closed = False
        self.ended = threading.Event()  # set while closed: a wait for the end alone, not woken by each feed
        self._partial = {"stdout": b"", "stderr": b""}
        self._by_name: dict[str, list[EventFn]] = {}
        self._every_event: list[EventFn] = []
        self._fields: tuple[str, ...] = ()  # what the watchers read of each event, besides its name
        self._sole: str | None = None  # the one name of the last batch read by fields, if one
        self._line_fns: dict[str, list[LineFn]] = {"stdout": [], "stderr": []}
        self.run = 1
        self.run_first: dict[str, dict] = {}  # event name -> its first occurrence in this run
        self._run_started = False  # a workload `start` event was seen in this run
        self._new_run_pending = False

    @property
    def current_run(self) -> int:
        """The run the next line belongs to (``run`` + 1 right after ``new_run()``)."""
        return self.run + 1 if self._new_run_pending else self.run

    def new_run(self) -> None:
        """The container starts again: the next event belongs to a new run."""
        with self.changed:
            self._new_run_pending = True
            self.run_first = {}

    # ---------------------------------------------------------------- watchers

    def watch_events(self, fn: EventFn, name: str | None = None, fields: tuple[str, ...] = ()) -> None:
        """Call ``fn(events)`` with each later batch (an ``EventBatch``: dicts, in order) of
        the events named ``name`` (of every event if None). ``fields``: the ones ``fn`` reads
        with ``events.column`` (read without making dicts)."""
        with self.changed:
            self._fields = tuple(sorted(set(self._fields) | set(fields) - {"event", "run"}))  # run: stamped
            if name is None:
                self._every_event.append(fn)
            else:
                self._by_name.setdefault(name, []).append(fn)

    def watch_lines(self, fn: LineFn, streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
        """Call ``fn(stream, block, n)`` with each later batch of complete lines of ``streams``:
        ``block`` is the ``n`` lines (n >= 1) as the bytes they came in, joined by ``\\n``,
        without a final newline (``block.decode("utf-8", errors="replace").split("\\n")``
        gives them as text, as ``lines`` does)."""
        with self.changed:
            for s in streams:
                self._line_fns[s].append(fn)

    # ---------------------------------------------------------------- feeding

    def feed(self, stream: str, chunk: bytes) -> None:
        """Add a raw chunk of ``stream`` ("stdout" or "stderr")."""
        data = self._partial[stream] + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial[stream] = data
            return
        self._partial[stream] = data[cut + 1:]
        with self.changed:
            self._add(stream, data[:cut])
            self.changed.notify_all()

    def _add(self, stream: str, block: bytes) -> None:
        """Take in ``block``: one or more complete lines of ``stream`` joined by ``\\n``
        (no final newline), as bytes: no Python object per line is made unless a malformed
        batch needs one."""
        n = block.count(b"\n") + 1
        tail = self._tail[stream]
        tail.append((block, n))
        kept = self._tail_kept[stream] + n
        while tail and kept - tail[0][1] >= self._tail_lines:  # older blocks no longer needed
            kept -= tail.popleft()[1]
        self._tail_kept[stream] = kept
        self.line_counts[stream] += n
        self.version += 1
        for fn in self._line_fns[stream]:
            fn(stream, block, n)
        if stream == "stdout":
            self._events(block, n)

    def _events(self, block: bytes, n: int) -> None:
        array = None  # the lines as one JSON array, when every line starts with "{"
        if block[:1] == b"{":
            body = block.replace(b"\n{", b",{")
            if b"\n" not in body:
                array = b"".join((b"[", body, b"]"))
        if array is not None and not self._new_run_pending and block.isascii() and self._by_fields(block, n, array):
            return
        self._as_dicts(block, n, array)

    def _by_fields(self, block: bytes, n: int, array: bytes) -> bool:
        """Take in ``block`` (``n`` lines, each starting with "{", ASCII; ``array``: them as
        one JSON array) by fields (see jsonlines, "by fields"); False, having done nothing, when
        it must go the dict way. While batches hold one name, it is tried first as the only
        one (``_sole``): then no record is looked at to name the batch's events."""
        decoded = self._records(array, n)
        if decoded is None:
            return False
        rows, names, getters = decoded
        if "start" in names:  # a run may begin inside this batch: numbered one by one
            return False
        src = Block(block, rows, self.run, getters)
        tags = list(map(NAME, rows)) if len(names) > 1 else None  # each row's name
        made: dict[str, dict] = {}  # a first occurrence, made once for both tables
        for table in (self.run_first, self.first):
            for name in names:
                if name not in table and isinstance(name, str) and len(table) < MAX_FIRST:
                    if name not in made:
                        made[name] = src.dicts([tags.index(name) if tags else 0])[0]
                    table[name] = made[name]
        for name, fns in self._by_name.items():
            if name in names:
                if tags is None:
                    batch = EventBatch(block=src, rows=rows)
                else:
                    mask = list(map(eq, tags, repeat(name)))
                    batch = EventBatch(block=src, rows=list(compress(rows, mask)),
                                       at=list(compress(range(n), mask)))
                for fn in fns:
                    fn(batch)
        if self._every_event:
            batch = EventBatch(block=src, rows=rows)
            for fn in self._every_event:
                fn(batch)
        return True

    def _records(self, array: bytes, n: int) -> tuple[list, set, dict] | None:
        """The ``n`` records of ``array``, their names and the fields' getters; None when the
        batch must go the dict way (a decode refused, another count, an unhashable name)."""
        if self._sole is not None:
            decoder, getters = record_decoder(self._fields, self._sole)
            try:
                rows = decoder.decode(array)
            except (msgspec.DecodeError, RecursionError):  # another name, or refused either way
                self._sole = None
            else:
                return (rows, {self._sole}, getters) if len(rows) == n else None
        decoder, getters = record_decoder(self._fields)
        try:
            rows = decoder.decode(array)  # (a ValidationError is a DecodeError)
            names = set(map(NAME, rows))  # TypeError: an unhashable name
        except (msgspec.DecodeError, RecursionError, TypeError):
            return None
        if len(rows) != n:
            return None
        if len(names) == 1 and isinstance(rows[0].f0, str) and rows[0].f0 != "start":
            self._sole = rows[0].f0
        return rows, names, getters

    def _as_dicts(self, block: bytes, n: int, array: bytes | None) -> None:
        """Take in ``block`` making a dict of each event (any batch: text lines, malformed
        ones, a run's start); ``array``: its lines as one JSON array, when every line starts
        with "{"."""
        events = None
        if array is not None:
            # Every line starts with "{" (a workload's usual batch of events): the bytes parsed
            # as one array. Invalid UTF-8, a malformed line or a line holding more than one
            # value fails here and goes the way below, which reads each line as text.
            try:
                parsed = orjson.loads(array)
                if len(parsed) == n:
                    events = parsed
            except orjson.JSONDecodeError:
                pass
        if events is None:
            cand = [line for line in block.decode("utf-8", errors="replace").split("\n") if line[:1] == "{"]
            if not cand:
                return
            events = parse_values(cand)
        try:
            # in C, no Python frame per event; raises on a value that is not a dict, so a
            # batch of dicts (every batch but a malformed one) is not checked a second time
            names = set(map(dict.get, events, repeat("event")))
        except TypeError:
            events, names = named(events)
        if not events:
            return
        if self._new_run_pending or "start" in names:
            self._number(events)  # rare: a run may begin inside this batch
        else:
            run = self.run
            for e in events:
                e["run"] = run
            run_first = self.run_first
            for name in names:
                if name not in run_first and isinstance(name, str) and len(run_first) < MAX_FIRST:
                    run_first[name] = next(e for e in events if e.get("event") == name)
        first = self.first
        for name in names:
            if name not in first and isinstance(name, str) and len(first) < MAX_FIRST:
                first[name] = next(e for e in events if e.get("event") == name)
        for name, fns in self._by_name.items():
            if name in names:
                batch = EventBatch([e for e in events if e.get("event") == name] if len(names) > 1 else events)
                for fn in fns:
                    fn(batch)
        if self._every_event:
            batch = EventBatch(events)
            for fn in self._every_event:
                fn(batch)

    def _number(self, events: list[dict]) -> None:
        """Stamp ``run`` on each event; a run starts at a pending ``new_run()`` or at a
        workload's second ``start`` event."""
        for e in events:
            is_start = e.get("event") == "start"
            if self._new_run_pending:
                self._new_run_pending = False
                self.run += 1
                self._run_started = False
                self.run_first = {}
            elif is_start and self._run_started:
                self.run += 1
                self.run_first = {}
            if is_start:
                self._run_started = True
            e["run"] = self.run
            name = e.get("event")
            if name not in self.run_first and isinstance(name, str) and len(self.run_first) < MAX_FIRST:
                self.run_first[name] = e

    def drop_partial(self) -> None:
        """Forget the unterminated piece each stream ended on (uncounted in ``line_counts``):
        for a reader that goes on from the engine's log, which holds that line whole."""
        with self.changed:
            self._partial = {"stdout": b"", "stderr": b""}

    def close(self) -> None:
        """The stream ended: flush a last unterminated line, wake every waiter."""
        with self.changed:
            for stream, rest in self._partial.items():
                if rest:
                    self._partial[stream] = b""
                    self._add(stream, rest)
            self.closed = True
            self.ended.set()
            self.changed.notify_all()

    def reopen(self) -> None:
        """The container runs again (a restart/start after an exit): later lines add to
        the same tail and tallies, so a role's output spans all its runs."""
        with self.changed:
            self.closed = False
            self.ended.clear()
            self.changed.notify_all()

    # ---------------------------------------------------------------- reading

    def wait_for(self, predicate: Callable[[], bool], deadline: float, clock: Callable[[], float] = time.monotonic) -> bool:
        """Block until ``predicate()`` is true (checked under the lock on every change)
        or ``deadline`` (a ``clock`` time) passes; returns the last value of the predicate."""
        with self.changed:
            while True:
                if predicate():
                    return True
                left = deadline - clock()
                if left <= 0 or self.closed:
                    return predicate()
                self.changed.wait(min(left, 1.0))

    def wait_change(self, since: int, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Block until ``version`` differs from ``since``, the output closes, or ``deadline``."""
        self.wait_for(lambda: self.version != since, deadline, clock)

    def lines(self, stream: str) -> list[str]:
        """The retained (last ``tail_lines``) lines of ``stream``."""
        with self.changed:
            blocks = list(self._tail[stream])
        return self._decoded(blocks)

    def _decoded(self, blocks: list[tuple[bytes, int]]) -> list[str]:
        """The last ``tail_lines`` lines of retained ``blocks``, as text."""
        kept: deque[str] = deque(maxlen=self._tail_lines)
        for block, _ in blocks:
            kept.extend(block.decode("utf-8", errors="replace").split("\n"))
        return list(kept)

    @property
    def stdout(self) -> list[str]:
        return self.lines("stdout")

    @property
    def stderr(self) -> list[str]:
        return self.lines("stderr")

    @property
    def events(self) -> list[dict]:
        """The JSON events among the retained stdout lines (the most recent ones only)."""
        return parse_batch([line for line in self.lines("stdout") if line.startswith("{")])

    def tail(self, n: int = 20) -> str:
        with self.changed:
            blocks = list(self._tail["stdout"]), list(self._tail["stderr"])
        out = self._decoded(blocks[0])[-n:]
        err = self._decoded(blocks[1])[-n:]
        lines = out + [f"[stderr] {line}" for line in err]
        return "\n".join(lines[-n:])
