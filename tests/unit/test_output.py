"""Output (bounded retention, event parsing) and the incremental tallies checks read."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.runtime.logs import Output
from labctl.scenario.model import Expect
from labctl.checks.watch import CreatedObjects, EventSeen, EventTally, LineSearch


def feed_lines(out: Output, lines: list[str], stream: str = "stdout", chunk: int = 7) -> None:
    """Feed ``lines`` cut into ``chunk``-byte pieces (lines and UTF-8 sequences split)."""
    data = "".join(line + "\n" for line in lines).encode()
    for i in range(0, len(data), chunk):
        out.feed(stream, data[i:i + chunk])


def test_lines_and_utf8_split_across_chunks() -> None:
    out = Output()
    feed_lines(out, ["héllo wörld", "ünïcode ✓", "last"], chunk=3)
    assert out.lines("stdout") == ["héllo wörld", "ünïcode ✓", "last"]
    out.feed("stderr", b"no newline at the end")
    out.close()
    assert out.lines("stderr") == ["no newline at the end"] and out.closed


def test_retention_is_bounded_whatever_the_volume() -> None:
    out = Output(tail_lines=50)
    tally = EventTally("wrote", rising="count").attach(out)
    feed_lines(out, [json.dumps({"event": "wrote", "count": i}) for i in range(1, 20001)], chunk=4096)
    assert out.line_counts["stdout"] == 20000
    assert len(out.lines("stdout")) == 50 and out.lines("stdout")[-1].endswith("20000}")
    assert tally.matched == 20000 and tally.not_rising is None
    assert len(tally.values) <= 20 and tally.last_value == 20000
    assert "... 20000" in tally.rising_text()
    assert out.tail(3).splitlines()[-1].endswith("20000}")


def test_each_event_reaches_its_watchers_once_in_order() -> None:
    out = Output()
    got: list[dict] = []
    every: list[dict] = []
    out.watch_events(got.extend, "read")
    out.watch_events(every.extend)
    lines = [
        '{"event":"start","ipcns":"ipc:[1]"}',
        "plain text",
        '{"event": "read", "count": 1}',  # not shmlab's spacing: parsed all the same
        "{not json",
        '{"event":"read","count":2},{"event":"read","count":3}',  # two objects: not one event
        "[1, 2]",
        '{"event":"read","count":NaN}',  # the standard library reads it, orjson does not
        '{"count": 9}',
    ]
    feed_lines(out, lines, chunk=5)
    assert [e["count"] for e in got] == [1, pytest.approx(float("nan"), nan_ok=True)]
    assert [e.get("event") for e in every] == ["start", "read", "read", None]
    assert out.first["start"]["ipcns"] == "ipc:[1]" and out.first["read"]["count"] == 1


def test_event_tally_where_rising_and_errors_across_batches() -> None:
    out = Output()
    t = EventTally("read", (("ip", Expect("eq", "127.0.0.1")),), rising="count").attach(out)
    feed_lines(out, [json.dumps({"event": "read", "count": c, "ip": ip})
                     for c, ip in ((1, "127.0.0.1"), (2, "0.0.0.0"), (3, "127.0.0.1"))])
    assert (t.named, t.matched, t.not_rising) == (3, 2, None)
    feed_lines(out, [json.dumps({"event": "read", "count": 3, "ip": "127.0.0.1"})])  # a new batch: 3 after 3
    assert t.not_rising == (3, 3)
    feed_lines(out, [json.dumps({"event": "error", "call": "shmget", "errno": "ENOENT"})])
    assert t.last_error is not None and t.last_error["errno"] == "ENOENT"


def test_event_tally_rising_rejects_non_numbers() -> None:
    out = Output()
    t = EventTally("x", rising="v").attach(out)
    feed_lines(out, [json.dumps({"event": "x", "v": v}) for v in (1, 2, "3")])
    assert t.not_rising == (2, "3")


@pytest.mark.parametrize("pattern", [
    r"^b", r"b$", r"a\s+b", r"(?s)a.b", r"\Aa", r"a\Z", r"(?<=x)b", r"[^z]b", r"b(?!c)", r"^$",
])
def test_line_search_by_block_agrees_with_each_line(pattern: str) -> None:
    lines = ["xa", "b", "ab", "a b", "xbc", "", "cb"]
    expected = next((line for line in lines if re.search(pattern, line)), None)
    for chunk in (1, 3, 100):
        out = Output()
        s = LineSearch(pattern).attach(out)
        feed_lines(out, lines, chunk=chunk)
        out.close()
        assert s.hit == expected, (pattern, chunk)


def test_line_search_streams_and_counts() -> None:
    out = Output()
    s = LineSearch("boom", ("stderr",)).attach(out)
    feed_lines(out, ["boom on stdout"])
    feed_lines(out, ["fine", "still fine"], stream="stderr")
    assert s.hit is None and s.searched == 2
    feed_lines(out, ["boom"], stream="stderr")
    assert s.hit == "boom"


def test_event_seen_and_created_objects() -> None:
    out = Output()
    seen = EventSeen("attached").attach(out)
    created = CreatedObjects().attach(out)
    feed_lines(out, ['{"event":"attached","key":1,"shmid":5}', '{"event":"attached","key":2,"semid":7}',
                     '{"event":"attached","mq_name":"/q"}'])
    assert seen.seen is not None and seen.seen["shmid"] == 5
    assert created.ids["shmid"] == {5} and created.ids["semid"] == {7} and created.ids["mq_name"] == {"/q"}


def test_one_parser_reads_the_workloads_json_lines_everywhere() -> None:
    from labctl.bench import launch
    from labctl.runner.probes import probe_event
    from labctl.runtime.jsonlines import json_events

    text = 'hello\n{"event": "a", "n": 1}\n{broken\n[1]\n{"event": "probe", "x": NaN}\n  {"event": "b"}\n'
    assert [e["event"] for e in json_events(text)] == ["a", "probe"]
    assert [e["event"] for e in json_events(text, strip=True)] == ["a", "probe", "b"]
    assert probe_event(text)["event"] == "probe" and probe_event("no events") is None
    assert launch.json_events is json_events


MIXED = [
    '{"event":"w","count":1}',
    '{"event":"w","count":2} {"event":"w","count":3}',  # two objects: not one event
    '{"event":"w","count":4}',
    '{"event":"w","count":[',  # cut: its end on the next line must not be joined to it
    '{"event":"w","count":5}]}',
    '{"event":"w","count":6}',
    '{"no":"name"}',
    '{"event":"w","count":' + "[" * 1100 + "]" * 1100 + "}",  # deeper than the stack: skipped
    '{"event":"w","count":7}',
    '{"event":"w","count":NaN}',  # orjson refuses it, the standard library reads it
]


def _one_by_one(lines: list[str]) -> list[dict]:
    """What parsing each line that starts with ``{`` on its own with the standard library gives."""
    found = []
    for line in lines:
        try:
            e = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if line.startswith("{") and isinstance(e, dict):
            found.append(e)
    return found


@pytest.mark.parametrize("lines", [
    [json.dumps({"event": "w", "count": i, "t_ms": i // 7}) for i in range(1, 3001)],
    MIXED,
    MIXED[:7] + MIXED[8:],  # malformed lines, every batch parsed as one array first
    ["plain", *MIXED[:3], "", "{", "[1]", *MIXED[5:7]],
], ids=["clean", "mixed", "mixed-shallow", "text"])
@pytest.mark.parametrize("chunk", [1, 7, 200, 1 << 20])
def test_no_event_lost_duplicated_or_misread(lines: list[str], chunk: int) -> None:
    """Every event reaches the watchers exactly once, in order, as parsing each line on its
    own reads it, however the output is cut and whatever else shares its batch."""
    out = Output()
    every: list[dict] = []
    named: list[dict] = []
    out.watch_events(every.extend)
    out.watch_events(named.extend, "w")
    feed_lines(out, lines, chunk=chunk)
    out.close()
    expected = _one_by_one(lines)
    assert repr([{k: v for k, v in e.items() if k != "run"} for e in every]) == repr(expected)
    assert repr([e["count"] for e in named]) == repr([e["count"] for e in expected if e.get("event") == "w"])
    assert all(e["run"] == 1 for e in every) and out.line_counts["stdout"] == len(lines)


def test_an_unhashable_event_name_names_nothing() -> None:
    out = Output()
    every: list[dict] = []
    out.watch_events(every.extend)
    feed_lines(out, ['{"event":"a"}', '{"event":["x"]}', '{"n":1}', '{"event":"b"}'], chunk=1 << 20)
    assert [e["event"] for e in every] == ["a", "b"]  # a batch with one keeps the named events


@pytest.mark.parametrize("pattern", ['"event":"removed"', "removed", "ab", "b", "a b", "x.y"])
def test_line_search_plain_text_agrees_with_the_expression(pattern: str) -> None:
    lines = ['{"event":"wrote"}', "xa", "a", "b", "a b", "xyz", "x.y", '{"event":"removed"}', "ab"]
    expected = next((i for i, line in enumerate(lines) if re.search(pattern, line)), None)
    for chunk in (1, 3, 100):
        out = Output()
        s = LineSearch(pattern).attach(out)
        feed_lines(out, lines, chunk=chunk)
        out.close()
        assert s.hit == (None if expected is None else lines[expected]), (pattern, chunk)
        assert expected is None or s.searched == expected + 1 or chunk < 100, (pattern, chunk, s.searched)


BYTE_LINES = [
    b'{"event":"w","count":1}',
    b'{"event":"w","count":2,"s":"caf\xc3\xa9"}',
    b'{"event":"w","count":3,"s":"bad \xff byte"}',  # invalid UTF-8: read as text, with U+FFFD
    b' {"event":"w","count":4}',  # not at the line's start: not an event
    b'{"event":"w","count":5}\r',  # a CRLF line: an event all the same
    b"",
    b'{"event":"w","count":6}',
    b'{"event":"w","count":7} {"event":"w","count":8}',  # two values: not one event
    b'{"event":"w","count":9}',
]


def _reference(lines: list[bytes]) -> list[dict]:
    """Each line decoded on its own (replacement for bad UTF-8), then parsed on its own."""
    return _one_by_one([line.decode("utf-8", errors="replace") for line in lines])


@pytest.mark.parametrize("chunk", [1, 2, 5, 40, 1 << 20])
@pytest.mark.parametrize("lines", [
    BYTE_LINES,
    [line for line in BYTE_LINES if line.startswith(b"{") and b"\xff" not in line and b"} {" not in line],
    BYTE_LINES[:1] + BYTE_LINES[2:3],
], ids=["mixed", "all-events", "bad-utf8"])
def test_batches_of_bytes_give_what_each_line_gives(lines: list[bytes], chunk: int) -> None:
    """Whatever the cut, a batch parsed from its bytes gives the events (and lines) that
    decoding and parsing each line on its own gives, and stderr's lines are never events."""
    data = b"".join(line + b"\n" for line in lines)
    out = Output()
    every: list[dict] = []
    out.watch_events(every.extend)
    seen: list[tuple[str, str, int]] = []
    out.watch_lines(lambda stream, block, n: seen.append((stream, block.decode("utf-8", errors="replace"), n)))
    for i in range(0, len(data), chunk):
        out.feed("stdout", data[i:i + chunk])
        out.feed("stderr", data[i:i + chunk])
    out.close()
    texts = [line.decode("utf-8", errors="replace") for line in lines]
    assert repr([{k: v for k, v in e.items() if k != "run"} for e in every]) == repr(_reference(lines))
    assert out.stdout == texts and out.stderr == texts
    assert out.line_counts == {"stdout": len(lines), "stderr": len(lines)}
    for stream in ("stdout", "stderr"):
        batches = [(text, n) for s, text, n in seen if s == stream]
        assert "\n".join(text for text, _ in batches).split("\n") == texts
        assert all(text.count("\n") + 1 == n for text, n in batches)


def test_a_last_line_without_newline_counts_at_close() -> None:
    out = Output()
    got: list[dict] = []
    out.watch_events(got.extend, "w")
    out.feed("stdout", b'{"event":"w","count":1}\n{"event":"w",')
    out.feed("stdout", b'"count":2}')
    assert [e["count"] for e in got] == [1] and out.line_counts["stdout"] == 1
    out.close()
    assert [e["count"] for e in got] == [1, 2] and out.stdout[-1] == '{"event":"w","count":2}'
    assert out.line_counts["stdout"] == 2


@pytest.mark.parametrize("tail_lines", [0, 1, 3, 50])
@pytest.mark.parametrize("chunk", [1, 9, 64, 1 << 20])
def test_the_tail_is_the_last_lines_whatever_the_blocks(tail_lines: int, chunk: int) -> None:
    lines = [f"line {i}" + "x" * (i % 7) for i in range(200)]
    out = Output(tail_lines=tail_lines)
    feed_lines(out, lines, stream="stderr", chunk=chunk)
    want = lines[len(lines) - tail_lines:] if tail_lines else []
    assert out.stderr == want
    assert out.tail(2) == "\n".join(f"[stderr] {line}" for line in want[-2:])
    # no more blocks kept than the tail needs, and the one before it at most
    kept = out._tail["stderr"]
    assert sum(n for _, n in kept) - (kept[0][1] if kept else 0) < max(tail_lines, 1)


@pytest.mark.parametrize("before, values", [
    (None, [2, 3, 4]), (1, [2, 3, 4]), (None, [2, 3.0, 4]), (None, [2, True, 4]), (None, [0, 1, 2]),
    (None, [True, 2, 3]), (False, [1, 2]), (None, [2, 3, 3]), (None, [5, 4]), (3, [3, 4]), (2.5, [3, 4]),
    (None, [2, 3, "4"]), (None, [2, None]), (None, [7]), (None, [2, 4, 5]), (None, [10 ** 30, 10 ** 30 + 1]),
])
def test_rising_agrees_with_pairwise_comparison(before: object, values: list) -> None:
    from labctl.checks.watch import _first_not_rising, _numeric

    prev, want = before, None
    for i, v in enumerate(values):
        if not _numeric(v) or (i > 0 or before is not None) and v <= prev:
            want = (prev, v)
            break
        prev = v
    assert _first_not_rising(before, values) == want


@pytest.mark.parametrize("pattern", ["é", "caf", "x✓", "\ufffd", "bad", "ab", '"event":"removed"', "zz"])
def test_plain_text_found_in_bytes_as_in_their_decoding(pattern: str) -> None:
    """A plain-text pattern is looked for in the undecoded bytes: the same line and count as
    searching each line decoded with replacement (bad UTF-8 around or before the text)."""
    lines = [b"ok", b"\xe2\x82", b"caf\xc3", b"\xffab", b"x\xe2\x9c\x93 \xc3\xa9", b"\xe9 bad",
             b'{"event":"removed"}', b"zz\xf0\x9f"]
    texts = [line.decode("utf-8", errors="replace") for line in lines]
    want = next((i for i, t in enumerate(texts) if re.search(pattern, t)), None)
    data = b"".join(line + b"\n" for line in lines)
    for chunk in (1, 4, 1 << 20):
        out = Output()
        s = LineSearch(pattern).attach(out)
        for i in range(0, len(data), chunk):
            out.feed("stdout", data[i:i + chunk])
        out.close()
        assert s.hit == (None if want is None else texts[want]), (pattern, chunk)
        assert s.searched == (len(lines) if want is None else want + 1), (pattern, chunk)


@pytest.mark.parametrize("lines", [
    [b'{"run":9,"event":"w","n":1}', b'{"event":"w","n":2}'],  # every line "{...}": "run" given by the parser
    [b'{"run":9,"event":"w","n":1}', b'{"event":"w","n":2}\r'],  # a CR: the per-event stamp
    [b'{"run":9,"event":"w","n":1}', b"{}", b'{"event":"w","n":2}'],  # an empty object: line by line
], ids=["braces", "cr", "empty-object"])
def test_every_event_gets_its_run_in_the_place_of_its_own(lines: list[bytes]) -> None:
    """``run`` is labctl's: a workload's own ``run`` is overridden where it stands, a new
    key comes last, and a second run's batch says 2, whichever way the batch was parsed."""
    out = Output()
    every: list[dict] = []
    out.watch_events(every.extend)
    out.feed("stdout", b"".join(line + b"\n" for line in lines))
    out.new_run()
    out.feed("stdout", b"".join(line + b"\n" for line in lines))
    out.close()
    named = [e for e in every if "event" in e]
    assert [list(e.items()) for e in named] == [
        [("run", r), ("event", "w"), ("n", 1)] if i % 2 == 0 else [("event", "w"), ("n", 2), ("run", r)]
        for i, r in enumerate([1, 1, 2, 2])], named


# Lines that read differently by one parser or another: the by-fields path (msgspec records)
# must give what the dict path gives for each, or leave the batch to it.
_VALUES = ["1", "-1", "0", "-0", "1.5", "1E2", "1e400", "-1e400", "NaN", "true", "null", '"x"', '""',
           str(2 ** 63 - 1), str(2 ** 63), str(-(2 ** 63)), str(-(2 ** 63) - 1), str(2 ** 64), str(10 ** 30),
           '"\\u0065"', '"\\ud800"', '"é"', '"\x7f"', '"a\\"b"', "[1,2]", '{"a":1}', f"[{2 ** 70}]",
           "[" * 1100 + "]" * 1100, "[" * 990 + "]" * 990, "01", "tru", '"\\q"',
           "1" * 5000, "-" + "1" * 5000, "1" * 5000 + ".5", "1e" + "9" * 30, "1" + "0" * 400]
_NAMES = ['"w"', '"v"', '"start"', '"error"', "5", "[1]", "null", '"\\u0077"']


@st.composite
def _event_line(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["plain", "", "[1]", "{", " {\"event\":\"w\",\"count\":1}", "{}",
                                     '{"event":"w"} {"event":"w"}', '{"event":"w","count":1},{"event":"v"}']))
    name = draw(st.sampled_from(_NAMES))
    key = draw(st.sampled_from(['"event"', '"ev\\u0065nt"', '"event" ']))
    fields = [f"{key}:{name}"]
    for field in draw(st.lists(st.sampled_from(["count", "ip", "z", "count", "run"]), max_size=3)):
        fields.append(f'"{field}":{draw(st.sampled_from(_VALUES))}')
    if draw(st.booleans()):
        fields.reverse()
    return "{" + ",".join(fields) + "}"


def _observe(lines: list[str], chunks: list[int], by_fields: bool) -> str:
    """What every kind of watcher and table sees of ``lines`` fed in ``chunks``."""
    out = Output()
    if not by_fields:
        out._by_fields = lambda block, n, array: False  # type: ignore[method-assign]
    every: list[dict] = []
    named: list[dict] = []
    out.watch_events(every.extend)
    out.watch_events(named.extend, "w")
    plain = EventTally("w", rising="count").attach(out)
    where = EventTally("w", (("ip", Expect("eq", "x")),), rising="count").attach(out)
    errors = EventTally("error").attach(out)
    first_run = EventTally("w", (("run", Expect("eq", 1)),)).attach(out)  # run: labctl's stamp
    data = "".join(line + "\n" for line in lines).encode()
    at = 0
    for size in chunks:
        out.feed("stdout", data[at:at + size])
        at += size
    out.feed("stdout", data[at:])
    out.close()
    tallies = [(t.named, t.matched, t.last_matched, t.values, t.last_value, t.not_rising, t.last_error)
               for t in (plain, where, errors, first_run)]
    return repr((every, named, tallies, out.first, out.run_first, out.line_counts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event_line(), min_size=1, max_size=12), st.lists(st.integers(1, 400), max_size=4))
def test_by_fields_reads_what_the_dicts_read(lines: list[str], chunks: list[int]) -> None:
    """The chatty path (records of the watched fields, dicts made on demand) and the general
    one (a dict per event) give every watcher, tally and table the same, line for line."""
    assert _observe(lines, chunks, True) == _observe(lines, chunks, False)


def test_by_fields_takes_a_clean_batch_without_making_its_dicts() -> None:
    """The test above cannot tell the paths apart on what they give: here, that a batch of
    plain events does go the by-fields way (no dict made for its events) and the other way
    does not."""
    made: list[int] = []
    out = Output()
    t = EventTally("w", rising="count").attach(out)
    real = out._as_dicts
    out._as_dicts = lambda block, n, array: (made.append(n), real(block, n, array))  # type: ignore[method-assign]
    feed_lines(out, [json.dumps({"event": "w", "count": i}) for i in range(1, 1001)], chunk=1 << 20)
    assert made == [] and t.matched == 1000 and t.not_rising is None
    feed_lines(out, ['{"event":"w","count":1001,"s":"é"}'])  # not ASCII: the dict way
    assert made == [1] and t.matched == 1001 and t.last_matched["s"] == "é"


def _batches(*groups: list[str]) -> tuple[list[str], list[int]]:
    """``groups`` of lines, each fed as one chunk (one batch)."""
    return [line for g in groups for line in g], [len("".join(line + "\n" for line in g).encode()) for g in groups]


W = [{"event": "w", "count": i} for i in range(1, 9)]


@pytest.mark.parametrize("groups", [
    (W[:3], W[3:6], [{"event": "v", "count": 1}] * 3, [{"event": "v", "count": 2}], W[6:]),
    (W[:3], W[3:6], [{"event": "w", "count": 7}, {"count": 3}], W[7:]),
    (W[:3], W[3:6], [{"event": "w", "count": 7}, {"event": "start"}], W[7:]),
    (W[:3], W[3:6], [{"event": "w", "count": 7}, {"event": "error", "errno": "E"}], [{"event": "w", "count": 2.5, "ip": "x"}] * 3),
    (W[:3], W[3:6], [{"event": "w", "count": 10 ** 20}], [{"event": "w", "count": [1]}], W[6:]),
    ([{"event": "start"}] * 2, [{"event": "start"}, {"event": "w"}], [{"event": 5}] * 2, [{"event": 5}] * 2, W[:2], W[2:4]),
], ids=["names-change", "a-nameless-event", "a-start", "an-error", "values-only-dicts-read", "starts-and-numbers"])
def test_a_batch_of_one_name_is_read_as_the_last_one_was_and_reads_alike(groups: tuple[list[dict], ...]) -> None:
    """Batches of one name are decoded as that name alone first; a batch that is not (another
    name, an event without one, a start) is read as any other: the same as the dicts give."""
    lines, chunks = _batches(*([json.dumps(e) for e in g] for g in groups))
    assert _observe(lines, chunks, True) == _observe(lines, chunks, False)
