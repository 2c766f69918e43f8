"""The handout docs/scenarios.md is generated from the library and must stay current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labctl import scenario as scen
from labctl.report.handout import expected, mode, parse_description, render_markdown, twins

ROOT = Path(__file__).resolve().parents[2]
HANDOUT = ROOT / "docs" / "scenarios.md"


@pytest.fixture(scope="module")
def library():
    """The scenario library as `labctl run` sees it from the repository root."""
    return scen.load_all([str(ROOT / "scenarios")])


def test_committed_handout_is_the_generated_one(library):
    want = render_markdown(library)
    got = HANDOUT.read_text(encoding="utf-8")
    assert got == want, "docs/scenarios.md is stale: run `labctl list --format markdown > docs/scenarios.md`"


def test_every_scenario_is_in_the_table_with_its_lesson(library):
    text = HANDOUT.read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| [`")]
    assert len(rows) == len(library)
    for s in library:
        row = next((r for r in rows if r.startswith(f"| [`{s.name}`]")), None)
        assert row is not None, s.name
        assert parse_description(s.description).summary.split(":")[0].replace("<", "&lt;") in row


def test_every_pitfall_has_a_section_with_cause_and_fix(library):
    text = HANDOUT.read_text(encoding="utf-8")
    pitfalls = text.split("## Pitfalls", 1)[1].split("## The other scenarios", 1)[0]
    for s in library:
        if "pitfall" not in s.tags:
            continue
        section = pitfalls.split(f"### {s.name}\n", 1)[1].split("\n### ", 1)[0]
        assert "*Cause:*" in section and "*Fix:*" in section, s.name


def test_the_handout_does_not_depend_on_the_working_directory(library, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert render_markdown(scen.load_all([str(ROOT / "scenarios")])) == render_markdown(library)


def test_cli_list_markdown_prints_the_handout(library):
    proc = subprocess.run([sys.executable, "-m", "labctl", "list", "--format", "markdown"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_markdown(library)


def test_parse_description_parts():
    lesson = parse_description(
        "One line.\n  What happens,\n  and why.\nExpected: ENOENT.\nFix: share the\nnamespace.\n")
    assert lesson.summary == "One line."
    assert lesson.body == "What happens, and why."
    assert lesson.expected == "ENOENT."
    assert lesson.fix == "share the namespace."


def test_lesson_paragraph_counts_as_the_fix():
    lesson = parse_description("Summary.\nBody.\nLesson: do this.")
    assert (lesson.body, lesson.expected, lesson.fix) == ("Body.", "", "do this.")


def test_mode_expected_and_twins(library):
    by = {s.name: s for s in library}
    assert mode(by["sysv-shareable"]) == "ipc shareable + container:"
    assert "tmpfs volume" in mode(by["tmpfs-volume-shared"])
    assert "kernel.shm_rmid_forced=1" in mode(by["shm-rmid-forced"])
    assert "shm_size 128m" in mode(by["posix-shm-size-raised"])
    # no Expected: line: the first check's name stands in
    assert expected(by["sysv-shareable"]) == by["sysv-shareable"].checks[0].name
    assert "count-race-atomic" in twins(by["count-race-lost-updates"], library)
    assert "count-race-lost-updates" not in twins(by["count-race-lost-updates"], library)
