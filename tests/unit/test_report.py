"""The report renderers against the contracts: JSON shape, JUnit structure, text summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.errors import LabctlError, UsageError
from labctl.report.formats import (
    parse_report_spec,
    render,
    to_json,
    to_junit,
    to_text,
    write_reports,
)
from labctl.report.results import CheckResult, RunResult, ScenarioResult

WRITER_LOG = "".join(f"writer: wrote count={i}\n" for i in range(1, 41))
# A reader log with things XML 1.0 cannot carry: NUL, BEL, ESC colour codes, form feed.
READER_LOG = "reader: attached shmid=7\x00\x07\n\x1b[31mreader: read count=0 ip=\x1b[0m\x0c\nreader: done\n"


def _passed(name: str = "sysv-shareable", file: str = "scenarios/sysv-shareable.yaml") -> ScenarioResult:
    return ScenarioResult(
        name=name,
        file=file,
        status="passed",
        duration_s=1.1,
        checks=[CheckResult("reader sees writer", "passed", duration_s=0.4)],
        tags=("sysv", "sharing"),
    )


def _failed() -> ScenarioResult:
    return ScenarioResult(
        name="sysv-wrong-ns",
        file="scenarios/pitfalls/sysv-wrong-ns.yaml",
        status="failed",
        duration_s=2.345,
        checks=[
            CheckResult("writer exits 0", "passed"),
            CheckResult(
                "reader sees writer",
                "failed",
                message="no matching read event within 10s",
                expected="read events with ip=127.0.0.1, at least 3",
                observed="3 read events, ip='' <&> \"quoted\"",
            ),
        ],
        logs={"writer": WRITER_LOG, "reader": READER_LOG},
    )


def _errored() -> ScenarioResult:
    return ScenarioResult(
        name="broken-image",
        file="scenarios/sysv-shareable.yaml",
        status="error",
        duration_s=0.2,
        message="image 'nope:latest' not found",
    )


def _skipped() -> ScenarioResult:
    return ScenarioResult(
        name="needs-privileged",
        file="scenarios/opt-in.yaml",
        status="skipped",
        message="needs --allow privileged",
    )


@pytest.fixture
def mixed_run() -> RunResult:
    return RunResult(
        run_id="0f1e2d3c-aaaa-bbbb-cccc-000000000001",
        scenarios=[_passed(), _failed(), _errored(), _skipped()],
        duration_s=7.24,
    )


@pytest.fixture
def green_run() -> RunResult:
    return RunResult(
        run_id="r1",
        scenarios=[_passed(), _passed("mmap-volume", "scenarios/mmap-volume.yaml")],
        duration_s=2.0,
    )


# ==== JSON ====


def test_json_has_the_contract_shape(mixed_run: RunResult) -> None:
    doc = json.loads(to_json(mixed_run))
    assert doc["summary"] == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1,
                              "skipped_by_reason": {"needs --allow privileged": 1}, "duration_s": 7.24}
    assert doc["run_id"] == mixed_run.run_id
    assert [s["name"] for s in doc["scenarios"]] == [s.name for s in mixed_run.scenarios]
    for scenario in doc["scenarios"]:
        assert {"name", "file", "status", "duration_s", "checks"} <= scenario.keys()
        assert scenario["status"] in ("passed", "failed", "error", "skipped")
        assert isinstance(scenario["duration_s"], float)
        for check in scenario["checks"]:
            assert {"name", "status", "message"} <= check.keys()
            assert isinstance(check["message"], str)


def test_json_matches_the_documented_fields_exactly_where_they_are_fixed() -> None:
    run = RunResult(run_id="x", scenarios=[_passed()], duration_s=1.1)
    doc = json.loads(to_json(run))
    assert doc["summary"]["passed"] == 1 and doc["summary"]["failed"] == 0
    assert doc["summary"]["errors"] == 0
    scenario = doc["scenarios"][0]
    assert scenario["name"] == "sysv-shareable"
    assert scenario["file"] == "scenarios/sysv-shareable.yaml"
    assert scenario["status"] == "passed"
    assert scenario["duration_s"] == 1.1
    assert scenario["checks"][0] == {"name": "reader sees writer", "status": "passed", "message": "", "duration_s": 0.4}
    assert scenario["tags"] == ["sysv", "sharing"]


def test_json_carries_failure_details_and_clean_logs(mixed_run: RunResult) -> None:
    failed = json.loads(to_json(mixed_run))["scenarios"][1]
    bad = failed["checks"][1]
    assert bad["expected"].startswith("read events")
    assert "quoted" in bad["observed"]
    assert "\x00" not in failed["logs"]["reader"] and "\x1b" not in failed["logs"]["reader"]
    assert "reader: read count=0 ip=" in failed["logs"]["reader"]


def test_json_against_a_schema(mixed_run: RunResult) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    check = {
        "type": "object",
        "required": ["name", "status", "message"],
        "properties": {"name": {"type": "string"}, "status": {"enum": ["passed", "failed", "error", "skipped"]},
                       "message": {"type": "string"}},
    }
    schema = {
        "type": "object",
        "required": ["summary", "scenarios"],
        "properties": {
            "summary": {
                "type": "object",
                "required": ["passed", "failed", "errors", "duration_s"],
                "properties": {k: {"type": "integer", "minimum": 0} for k in ("passed", "failed", "errors")}
                | {"duration_s": {"type": "number", "minimum": 0}},
            },
            "scenarios": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "file", "status", "duration_s", "checks"],
                    "properties": {"checks": {"type": "array", "items": check},
                                   "duration_s": {"type": "number", "minimum": 0}},
                },
            },
        },
    }
    jsonschema.validate(json.loads(to_json(mixed_run)), schema)


# ==== JUnit ====


def _assert_junit_structure(root: ET.Element) -> None:
    """What Jenkins' JUnit plugin and GitLab's junit artifact parser rely on."""
    assert root.tag == "testsuites"
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors", "skipped", "time"):
            assert attr in suite.attrib, f"testsuite lacks {attr}"
        float(suite.get("time", ""))
        cases = suite.findall("testcase")
        counted = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        for key, value in counted.items():
            assert int(suite.get(key, "-1")) == value, (suite.get("name"), key)
            total[key] += value
        for child in suite:
            assert child.tag in ("properties", "testcase", "system-out", "system-err")
        for case in cases:
            for attr in ("name", "classname", "time"):
                assert case.get(attr), f"testcase lacks {attr}"
            float(case.get("time", ""))
            outcomes = [c for c in case if c.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1
            for outcome in outcomes:
                if outcome.tag != "skipped":
                    assert "message" in outcome.attrib and "type" in outcome.attrib
    for key, value in total.items():
        assert int(root.get(key, "-1")) == value


def test_junit_is_well_formed_and_structured(mixed_run: RunResult) -> None:
    text = to_junit(mixed_run)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    _assert_junit_structure(root)


def test_junit_groups_one_suite_per_file(mixed_run: RunResult) -> None:
    root = ET.fromstring(to_junit(mixed_run))
    suites = {s.get("name"): [c.get("name") for c in s.findall("testcase")] for s in root}
    assert suites == {
        "scenarios/sysv-shareable.yaml": ["sysv-shareable", "broken-image"],
        "scenarios/pitfalls/sysv-wrong-ns.yaml": ["sysv-wrong-ns"],
        "scenarios/opt-in.yaml": ["needs-privileged"],
    }
    case = root.find(".//testcase[@name='sysv-wrong-ns']")
    assert case is not None
    assert case.get("classname") == "scenarios.pitfalls.sysv-wrong-ns"
    assert case.get("time") == "2.345"


def test_junit_failure_holds_expected_observed_and_log_tails(mixed_run: RunResult) -> None:
    root = ET.fromstring(to_junit(mixed_run))
    failure = root.find(".//testcase[@name='sysv-wrong-ns']/failure")
    assert failure is not None
    assert failure.get("message", "").startswith("reader sees writer: no matching read event")
    body = failure.text or ""
    assert "expected: read events with ip=127.0.0.1" in body
    assert "observed: 3 read events, ip='' <&> \"quoted\"" in body
    assert "--- writer:" in body and "writer: wrote count=40" in body
    assert "reader: read count=0 ip=" in body
    error = root.find(".//testcase[@name='broken-image']/error")
    assert error is not None and "nope:latest" in error.get("message", "")
    assert root.find(".//testcase[@name='needs-privileged']/skipped") is not None
    assert root.find(".//testcase[@name='sysv-shareable']/failure") is None


def test_junit_strips_control_characters_everywhere() -> None:
    nasty = "\x00\x01\x1b[1mbold\x1b[0m\x7f\ufffe"
    run = RunResult(
        run_id="r",
        scenarios=[
            ScenarioResult(
                name="n",
                file="f.yaml",
                status="failed",
                checks=[CheckResult("c" + nasty, "failed", message=nasty, expected=nasty, observed=nasty)],
                logs={"c": nasty * 3},
                message=nasty,
            )
        ],
    )
    root = ET.fromstring(to_junit(run))  # raises on any illegal character
    _assert_junit_structure(root)
    assert "bold" in (root.find(".//failure").text or "")  # type: ignore[union-attr]


def test_junit_empty_run_is_valid() -> None:
    root = ET.fromstring(to_junit(RunResult(run_id="r")))
    assert root.get("tests") == "0" and len(root) == 0


# ==== text ====


def test_text_all_passed(green_run: RunResult) -> None:
    text = to_text(green_run, color=False)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("PASS") and "sysv-shareable" in lines[0] and "1.1s" in lines[0]
    assert lines[-1] == "2 passed, 0 failed, 0 errors in 2.0s"
    assert "\x1b" not in text


def test_text_failure_details(mixed_run: RunResult) -> None:
    text = to_text(mixed_run, color=False)
    assert "FAIL  sysv-wrong-ns" in text
    assert "x reader sees writer: no matching read event within 10s" in text
    assert "expected: read events with ip=127.0.0.1, at least 3" in text
    assert "observed: 3 read events" in text
    # Only the tail of a long log, and the latest lines.
    assert "writer: wrote count=40" in text and "writer: wrote count=1\n" not in text
    assert "--- reader (last 3 lines) ---" in text
    assert "ERROR broken-image" in text and "image 'nope:latest' not found" in text
    assert "writer exits 0" not in text  # passing checks of a failed scenario stay quiet
    assert text.splitlines()[-1] == "1 passed, 1 failed, 1 errors, 1 skipped in 7.2s"


def test_text_color_only_when_asked(mixed_run: RunResult) -> None:
    colored = to_text(mixed_run, color=True)
    assert "\x1b[31m" in colored and "\x1b[32m" in colored
    assert "\x1b[" not in to_text(mixed_run, color=False).replace(READER_LOG, "")


# ==== dispatch and --report ====


def test_render_dispatch(green_run: RunResult) -> None:
    assert render(green_run, "json") == to_json(green_run)
    assert render(green_run, "junit") == to_junit(green_run)
    assert render(green_run, "text") == to_text(green_run)
    with pytest.raises(UsageError, match="unknown report format"):
        render(green_run, "html")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("junit:out/r.xml", ("junit", "out/r.xml")), ("json:/tmp/a:b.json", ("json", "/tmp/a:b.json"))],
)
def test_parse_report_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_report_spec(spec) == expected


@pytest.mark.parametrize("spec", ["junit", "junit:", "xml:out.xml", ":out.xml"])
def test_parse_report_spec_refuses(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_report_spec(spec)


def test_write_reports_creates_parents(tmp_path: Path, mixed_run: RunResult) -> None:
    specs = [("junit", str(tmp_path / "a/b/report.xml")), ("json", str(tmp_path / "r.json")),
             ("text", str(tmp_path / "c/r.txt"))]
    written = write_reports(mixed_run, specs)
    assert [str(p) for p in written] == [p for _, p in specs]
    ET.parse(tmp_path / "a/b/report.xml")
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["failed"] == 1
    assert "\x1b" not in (tmp_path / "c/r.txt").read_text()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c", "r.json", "r.txt", "report.xml"]


def test_write_reports_unwritable(tmp_path: Path, green_run: RunResult) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LabctlError, match="cannot write report"):
        write_reports(green_run, [("json", str(blocker / "r.json"))])
