"""Property tests: whatever the input, only ScenarioErrors escape the loader."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.errors import ScenarioErrors
from labctl.scenario import load_text
from labctl.scenario.yamlload import decode

VALID = Path(__file__).resolve().parents[1] / "data" / "valid"
VALID_TEXTS = [p.read_text() for p in sorted(VALID.glob("*.yaml"))]
YAML_BITS = [":", "-", " ", "\n", "  ", "[", "]", "{", "}", "&a", "*a", "!!", "!x", "'", '"', "#", "?",
             "|", ">", ",", "\t", "0666", "0x4d2", "~", "yes", "<<: *a", "container:", "after:", "---"]


def _load(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except ScenarioErrors as e:
        assert e.errors and all(err.message.startswith("fuzz.yaml") for err in e.errors)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    try:
        _load(decode(data, "fuzz.yaml"))
    except ScenarioErrors:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_TEXTS), st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 20), st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=8))),
    min_size=1, max_size=6))
def test_mutated_valid_files(text: str, edits: list[tuple[int, int, str]]) -> None:
    for at, cut, insert in edits:
        at %= len(text) + 1
        text = text[:at] + insert + text[at + cut:]
    _load(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_TEXTS), st.data())
def test_deleted_lines(text: str, data: st.DataObject) -> None:
    lines = text.splitlines(keepends=True)
    drop = data.draw(st.sets(st.integers(0, len(lines) - 1), max_size=4))
    _load("".join(line for i, line in enumerate(lines) if i not in drop))


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


VALID_DOCS = [yaml.safe_load(t) for t in VALID_TEXTS]
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["writer", "reader", "container:writer", "host", "0x4d2", "1s"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["container", "code", "in", "key", "layout", "after", "ipc", "x"]), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_DOCS), st.data())
def test_values_swapped_for_other_types(doc: dict, data: st.DataObject) -> None:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(ANY_VALUE)
    _load(yaml.safe_dump(doc))
