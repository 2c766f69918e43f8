"""labctl.images.library: where the scenario library and workload sources are found; `init`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.images import build

from labctl.images import library
from labctl.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_uses_its_top_level_folders() -> None:
    # an editable install has no labctl/_data: the checkout's folders are the data
    assert library.library_dir() == ROOT / "scenarios"
    assert library.images_dir() == ROOT / "images"
    assert build.source_dir({}) == ROOT / "images" / "shmlab"


def test_installed_package_data_wins_over_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "_data"
    (data / "scenarios").mkdir(parents=True)
    (data / "images" / "shmlab").mkdir(parents=True)
    (data / "images" / "shmlab" / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(library, "PACKAGE_DATA", data)
    assert library.library_dir() == data / "scenarios"
    assert build.source_dir({}) == data / "images" / "shmlab"


def test_default_paths_prefer_a_local_scenarios_folder(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    d = library.default_paths(tmp_path)
    assert d.paths == ["scenarios"] and "./scenarios" in d.note


def test_default_paths_fall_back_to_the_built_in_library(tmp_path: Path) -> None:
    d = library.default_paths(tmp_path)
    assert d.paths == [str(ROOT / "scenarios")]
    assert "built-in library" in d.note and str(ROOT / "scenarios") in d.note


def test_default_paths_without_any_library_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "CHECKOUT", tmp_path / "nowhere")
    with pytest.raises(UsageError, match="no built-in library"):
        library.default_paths(tmp_path)


def test_init_copies_the_whole_library_with_its_schema(tmp_path: Path) -> None:
    written = library.init(tmp_path / "lab", schema_json=json.dumps({"title": "x"}))
    names = {p.name for p in written}
    # the C headers layouts name, copied into include/ with their precomputed layouts
    headers = {"conn_stat.h", "sensor.h", "conn_stat.h.layout.json", "sensor.h.layout.json"}
    profiles = {p.name for p in (ROOT / "scenarios" / "seccomp").glob("*.json")}  # seccomp=FILE, copied alongside
    assert names == ({p.name for p in (ROOT / "scenarios").glob("*.yaml")} | {"scenario.schema.json"} | headers
                     | profiles)
    assert (tmp_path / "lab" / "seccomp" / "deny-shmget.json").is_file()
    assert load_file_ok(tmp_path / "lab" / "seccomp-denies-shmget.yaml")
    assert {p.name for p in (tmp_path / "lab" / "include").iterdir()} == headers
    assert "header: include/sensor.h" in (tmp_path / "lab" / "own-program-layout.yaml").read_text()
    from labctl.scenario import load_file

    assert load_file(str(tmp_path / "lab" / "own-program-layout.yaml")).checks[0].body.layout is not None
    text = (tmp_path / "lab" / "sysv-shareable.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=scenario.schema.json"
    assert text.split("\n", 1)[1] == (ROOT / "scenarios" / "sysv-shareable.yaml").read_text().split("\n", 1)[1]


def load_file_ok(path: Path) -> bool:
    from labctl.scenario import load_file

    return load_file(str(path)).name == path.stem


def test_init_copies_named_scenarios_only(tmp_path: Path) -> None:
    written = library.init(tmp_path, ["sysv-shareable", "mmap-volume.yaml"])
    assert sorted(p.name for p in written) == ["mmap-volume.yaml", "sysv-shareable.yaml"]


def test_init_refuses_unknown_names_and_overwrites(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no scenario named nope"):
        library.init(tmp_path, ["sysv-shareable", "nope"])
    assert not list(tmp_path.iterdir())  # nothing written on error
    library.init(tmp_path, ["sysv-shareable"])
    (tmp_path / "sysv-shareable.yaml").write_text("mine\n")
    with pytest.raises(UsageError, match="already exist"):
        library.init(tmp_path, ["sysv-shareable"])
    assert (tmp_path / "sysv-shareable.yaml").read_text() == "mine\n"
    library.init(tmp_path, ["sysv-shareable"], force=True)
    assert (tmp_path / "sysv-shareable.yaml").read_text() != "mine\n"
