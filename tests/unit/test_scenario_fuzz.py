"""Property tests: whatever the input, only ScenarioErrors escape the loader."""

from __future__ import annotations

from pathlib import Path

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
