"""Every malformed scenario fails with its exact first error, and only with ScenarioErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import ScenarioError, ScenarioErrors, UsageError
from labctl.scenario import discover, load_all, load_file, load_text
from labctl.scenario.yamlload import MAX_BYTES
from tests.helpers import expected_errors

INVALID = Path(__file__).resolve().parents[1] / "data" / "invalid"
VALID = Path(__file__).resolve().parents[1] / "data" / "valid"





EXPECTED = expected_errors()


def test_every_invalid_file_has_an_expectation() -> None:
    files = {p.name for p in INVALID.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_file_first_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(INVALID)  # messages then name the file as the expectation does
    with pytest.raises(ScenarioErrors) as info:
        load_file(name)
    errors = info.value.errors
    assert errors and all(isinstance(e, ScenarioError) for e in errors)
    assert errors[0].message == EXPECTED[name]
    # Sorted by position, so the first one is the first in the file.
    positions = [(e.line or 0, e.col or 0) for e in errors]
    assert positions == sorted(positions)


def test_multi_megabyte_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\n" + "# padding padding padding padding\n" * (3 * 1024 * 1024 // 34))
    assert big.stat().st_size > MAX_BYTES
    with pytest.raises(ScenarioErrors) as info:
        load_file(str(big))
    assert info.value.errors[0].message == (
        f"{big}: file is {big.stat().st_size} bytes; scenario files are limited to {MAX_BYTES} bytes")
    with pytest.raises(ScenarioErrors):
        load_text(big.read_text(), "big.yaml")


def test_deep_nesting_generated() -> None:
    text = "version: 1\ntags: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n"
    with pytest.raises(ScenarioErrors) as info:
        load_text(text, "deep.yaml")
    assert "nesting deeper than" in info.value.errors[0].message


def test_all_errors_are_collected_not_only_the_first() -> None:
    text = (
        "version: 1\nname: x\ndescription: d\n"
        "containers:\n  a:\n    workload: holdd\n    ipc: sharable\n"
        "checks:\n  - exit: {container: b}\n  - output: {container: a}\n"
    )
    with pytest.raises(ScenarioErrors) as info:
        load_text(text, "f.yaml")
    assert [e.message for e in info.value.errors] == [
        "f.yaml:6:15: containers.a.workload: unknown workload 'holdd' (did you mean 'hold'?)",
        "f.yaml:7:10: containers.a.ipc: unknown IPC mode 'sharable' "
        "(expected private, shareable, none, host or container:NAME)",
        "f.yaml:9:23: checks[0].exit.container: unknown container 'b' (expected one of: a)",
        "f.yaml:10:13: checks[1].output: needs exactly one of matches, not_matches",
    ]
    assert str(info.value).count("\n") == 3


def test_a_malformed_container_name_in_a_check_is_one_error() -> None:
    # Not also "unknown container ''": the name's own error says it all.
    text = ("version: 1\nname: x\ndescription: d\ncontainers:\n  a: {workload: hold}\n"
            "checks:\n  - exit: {container: Reader}\n")
    with pytest.raises(ScenarioErrors) as info:
        load_text(text, "f.yaml")
    assert [e.message for e in info.value.errors] == [
        "f.yaml:7:23: checks[0].exit.container: invalid container name 'Reader': lowercase letters, "
        "digits and '-', starting with a letter, at most 31 characters",
    ]


def test_scenario_errors_carry_fields() -> None:
    with pytest.raises(ScenarioErrors) as info:
        load_text("version: 1\nname: x\nname: y\n", "f.yaml")
    e = info.value.errors[0]
    assert (e.file, e.line, e.col, e.path) == ("f.yaml", 3, 1, "name")
    assert e.exit_code == 2


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        discover([str(tmp_path / "nope")])


def test_discover_sorts_and_filters(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("")
    (tmp_path / "a.yml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("")
    assert discover([str(tmp_path)]) == [str(tmp_path / n) for n in ("a.yml", "b.yaml", "sub/c.yaml")]


def test_load_all_collects_errors_across_files(tmp_path: Path) -> None:
    for n in ("one", "two"):
        (tmp_path / f"{n}.yaml").write_text((VALID / "private-refused.yaml").read_text())
    (tmp_path / "three.yaml").write_text("- not a mapping\n")
    with pytest.raises(ScenarioErrors) as info:
        load_all([str(tmp_path)])
    messages = [e.message for e in info.value.errors]
    assert messages == [
        f"{tmp_path}/three.yaml:1:1: expected a mapping at the top level, got a list",
        f"{tmp_path}/two.yaml:2:7: name: scenario name 'private-refused' is also used by {tmp_path}/one.yaml",
    ]


def test_load_all_valid_folder() -> None:
    names = [s.name for s in load_all([str(VALID)])]
    assert names == ["host-and-image", "mmap-tempdir", "private-refused", "sysv-shareable"]
