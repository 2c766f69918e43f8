"""The runtime table's comparison (tests/runtime_table.py) with the runs faked: a refused cell
that is refused again is reported, one that agrees when run again is a warning, and any other
difference is reported without a second run (no engine)."""

from __future__ import annotations

import pytest

from tests import runtime_table

REFUSED = {"name": "matrix-sysv", "status": "failed", "message": "",
           "checks": [{"name": "shared", "status": "failed",
                       "message": "container 'reader' did not run: the engine refused it: runsc start failed"}]}


def _fake_runs(monkeypatch: pytest.MonkeyPatch, first: list[dict], again: list[dict]) -> list[str | None]:
    asked: list[str | None] = []

    def results(engine: str, runtime: str, only: str | None = None) -> list[dict]:
        asked.append(only)
        return again if only else first

    monkeypatch.setattr(runtime_table, "results", results)
    return asked


def _as_committed(name: str) -> dict:
    """A result whose cell is what docs/runtimes.md says for ``name`` on docker with runc."""
    want = runtime_table.committed_cell(name, "docker", "runc")
    assert want in ("shared", "not shared"), want
    if want == "shared":
        return {"name": name, "status": "passed", "checks": []}
    return {"name": name, "status": "failed", "checks": [{"name": "shared", "status": "failed", "message": "x"}]}


def test_a_refusal_refused_again_on_its_own_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_runs(monkeypatch, [REFUSED], [REFUSED])
    bad = runtime_table.mismatches("docker", "runc")
    assert asked == [None, "matrix-sysv"]
    assert len(bad) == 1 and "matrix-sysv on docker with runc: the run says refused" in bad[0]
    assert "runsc start failed" in bad[0]


def test_a_refusal_that_agrees_when_run_again_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_runs(monkeypatch, [REFUSED], [_as_committed("matrix-sysv")])
    with pytest.warns(UserWarning, match="the first run said refused .*run again on its own"):
        assert runtime_table.mismatches("docker", "runc") == []


def test_cells_that_agree_are_not_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_runs(monkeypatch, [_as_committed(n) for n in runtime_table.MECHANISMS], [])
    assert runtime_table.mismatches("docker", "runc") == [] and asked == [None]


def test_a_difference_other_than_a_refusal_is_reported_without_a_second_run(monkeypatch: pytest.MonkeyPatch) -> None:
    want = runtime_table.committed_cell("matrix-sysv", "docker", "runc")
    other = {"name": "matrix-sysv", "status": "failed", "message": "",
             "checks": [{"name": "reader", "status": "failed", "message": "no read event"}]}  # an "error" cell
    assert runtime_table.cell(other) == "error" != want
    asked = _fake_runs(monkeypatch, [other], [_as_committed("matrix-sysv")])
    bad = runtime_table.mismatches("docker", "runc")
    assert asked == [None] and len(bad) == 1 and "the run says error" in bad[0]
