"""`labctl clean --run ID` takes the full run id or the short form progress lines show."""

from __future__ import annotations

import pytest

from labctl.runtime import clean
from labctl.errors import UsageError

FULL_A = "dec82ee2-1111-4222-8333-944445555666"
FULL_B = "dec82ee2-7777-4888-9999-aaaabbbbcccc"
OTHER = "0badf00d-1111-4222-8333-944445555666"


class FakeEngine:
    def __init__(self, *runs: str) -> None:
        self.runs = runs
        self.removed: list[dict] = []

    def run_ids(self) -> dict[str, dict[str, str]]:
        return {r: {} for r in self.runs}

    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        self.removed.append(labels)
        return [f"container of {labels['io.labctl.run-id']}"], []


def test_full_id_is_used_as_given() -> None:
    eng = FakeEngine(FULL_A, OTHER)
    clean.remove_run(eng, FULL_A)
    assert eng.removed == [{"io.labctl.run-id": FULL_A}]


def test_short_id_names_its_one_run() -> None:
    eng = FakeEngine(FULL_A, OTHER)
    clean.remove_run(eng, "dec82ee2")
    assert eng.removed == [{"io.labctl.run-id": FULL_A}]


def test_ambiguous_short_id_is_a_usage_error_naming_the_runs() -> None:
    eng = FakeEngine(FULL_A, FULL_B)
    with pytest.raises(UsageError, match="start of 2 runs"):
        clean.remove_run(eng, "dec82ee2")
    assert eng.removed == []


def test_too_short_or_unknown_prefix_removes_nothing_of_other_runs() -> None:
    eng = FakeEngine(FULL_A)
    clean.remove_run(eng, "dec8")  # under 8 characters: taken literally, matches no label
    clean.remove_run(eng, "ffffffff")
    assert eng.removed == [{"io.labctl.run-id": "dec8"}, {"io.labctl.run-id": "ffffffff"}]


def test_the_frozen_labctl_leaves_inline_c_layouts_out_of_its_built_in_library(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path) -> None:
    import sys

    from labctl.images import library

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "plain.yaml").write_text("layout: conn_stat\n")
    (lib / "header.yaml").write_text("      layout: {header: ../x.h, struct: s}\n")
    (lib / "inline.yaml").write_text("      layout: {c: 'struct s { int a; };', struct: s}\n")
    monkeypatch.setattr(library, "library_dir", lambda: lib)
    assert library.default_paths(tmp_path).paths == [str(lib)]  # pip labctl: the whole folder
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    chosen = library.default_paths(tmp_path)
    # a header's layout travels precomputed next to it (labctl.layout.precomputed): kept
    assert chosen.paths == [str(lib / "header.yaml"), str(lib / "plain.yaml")]
    assert "1 scenario(s) with layouts read from C left out" in chosen.note
