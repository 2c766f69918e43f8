"""The strict YAML loader: safe_load's scalars, positions, and refusal of abuse."""

from __future__ import annotations

import pytest
import yaml

from labctl.errors import ScenarioErrors
from labctl.scenario.yamlload import MAX_NODES, decode, load_yaml


def first_error(text: str) -> str:
    with pytest.raises(ScenarioErrors) as info:
        load_yaml(text, "f.yaml")
    return info.value.errors[0].message


@pytest.mark.parametrize("text", [
    "a: 0666", "a: 0x1F", "a: 1_000", "a: yes", "a: off", "a: ~", "a: 1.5e3", "a: .inf", "a: -7",
    "a: '0666'", "a: \"yes\"", "a: 0b101", "a: 190:20:30", "a: [1, two, 3.0]", "a: {b: null}",
])
def test_scalars_resolve_as_safe_load(text: str) -> None:
    assert load_yaml(text).plain() == yaml.safe_load(text)


def test_timestamps_stay_strings() -> None:
    assert load_yaml("a: 2024-01-02").plain() == {"a": "2024-01-02"}


def test_positions_are_one_based_and_raw_text_kept() -> None:
    tree = load_yaml("top:\n  key: 0666\n  list: [a, 'b']\n")
    top = tree.value["top"]
    assert (top.line, top.col) == (2, 3)
    assert top.keys["list"] == (3, 3)
    key = top.value["key"]
    assert (key.value, key.raw, key.line, key.col) == (438, "0666", 2, 8)
    b = top.value["list"].value[1]
    assert (b.value, b.line, b.col) == ("b", 3, 13)


def test_merge_keys_fill_in_without_overriding() -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n"
    assert load_yaml(text).plain() == yaml.safe_load(text)


@pytest.mark.parametrize("tag", ["!!str", "!!int", "!!float", "!!bool", "!!null"])
def test_standard_scalar_tags_allowed(tag: str) -> None:
    value = {"!!str": "1", "!!int": "1", "!!float": "1.5", "!!bool": "true", "!!null": "~"}[tag]
    assert load_yaml(f"a: {tag} {value}").plain() == yaml.safe_load(f"a: {tag} {value}")


@pytest.mark.parametrize("text", [
    "a: !!python/object/apply:os.system [echo hi]",
    "a: !!python/name:os.system",
    "a: !!binary aGk=",
    "a: !!set {x}",
    "a: !!timestamp 2020-01-01",
    "a: !custom x",
    "a: !<tag:example.com,2000:x> y",
])
def test_other_tags_refused(text: str) -> None:
    assert "is not allowed" in first_error(text)


def test_bad_explicit_int() -> None:
    assert first_error("a:\n  b: !!int xyz") == "f.yaml:2:6: a.b: 'xyz' is not a valid !!int value"


def test_duplicate_key_at_second_position() -> None:
    assert first_error("a: 1\nb:\n  c: 1\n  c: 2\n") == "f.yaml:4:3: b.c: duplicate key 'c' (first at line 3)"


def test_alias_bomb_refused_quickly() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    prev = "a"
    for n in "bcdefghijk":
        text += f"{n}: &{n} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
        prev = n
    assert f"more than {MAX_NODES} values" in first_error(text)


def test_aliases_below_limit_are_fine() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n").plain() == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_refused(opener: str, closer: str) -> None:
    assert "nesting deeper than" in first_error("a: " + opener * 10000 + "1" + closer * 10000)


def test_deep_block_nesting_refused() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    assert "nesting deeper than" in first_error(text)


def test_tab_indentation_reports_scanner_position() -> None:
    assert first_error("a:\n\tb: 1\n") == (
        "f.yaml:2:1: YAML syntax error: while scanning for the next token "
        "found character '\\t' that cannot start any token")


@pytest.mark.parametrize("text,message", [
    ("", "f.yaml:1:1: empty file: expected a scenario mapping (version, name, description, ...)"),
    ("~\n", "f.yaml:1:1: empty file: expected a scenario mapping (version, name, description, ...)"),
    ("[1]", "f.yaml:1:1: expected a mapping at the top level, got a list"),
    ("42", "f.yaml:1:1: expected a mapping at the top level, got an integer"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2:1: YAML syntax error: expected a single document in the stream "
                          "but found another document"),
    ("a: \x00", "f.yaml:1:4: binary file (NUL byte): not a YAML scenario"),
    ("? [a]\n: b", "f.yaml:1:3: mapping keys must be plain strings"),
    ("a: \ud800", "f.yaml:1:4: not valid UTF-8 text"),
])
def test_top_level_and_encoding_errors(text: str, message: str) -> None:
    assert first_error(text) == message


def test_decode_refuses_non_utf8_and_strips_bom() -> None:
    with pytest.raises(ScenarioErrors) as info:
        decode(b"a: 1\nb: caf\xe9\n", "f.yaml")
    assert info.value.errors[0].message == "f.yaml:2:7: not valid UTF-8 (byte 0xe9); scenario files must be UTF-8"
    assert decode("\ufeffa: 1".encode(), "f.yaml") == "a: 1"
