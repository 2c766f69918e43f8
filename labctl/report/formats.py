"""Renderers of a finished run: JSON (the documented contract), JUnit XML and text.

Everything here is a pure function of :class:`labctl.report.results.RunResult`, so the
reports unit-test without an engine. ``write_reports`` serves ``--report FORMAT:PATH``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from labctl.errors import LabctlError, UsageError
from labctl.report.results import (REPORT_FORMATS as FORMATS, STATUS_LABELS, CheckResult, RunResult, ScenarioResult,
                            StepResult, side_by_side)

# How many trailing lines of each container's output a failure shows. The text report
# is read in a terminal, so it is kept short; JUnit bodies are read in a CI page.
TEXT_LOG_LINES = 15
OBSERVED_CHARS = 110  # what a passed check observed, cut to one terminal line
JUNIT_LOG_LINES = 60

# ANSI escape sequences (colour, cursor) and the characters XML 1.0 cannot carry at
# all, even escaped: C0 controls but tab/newline/CR, lone surrogates, U+FFFE/U+FFFF.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# ==== shared helpers ====


def _round(seconds: float) -> float:
    """Durations in reports: milliseconds are plenty, and keep the JSON stable to diff."""
    return round(max(seconds, 0.0), 3)


def clean_text(text: str) -> str:
    """Strip ANSI sequences and XML-illegal control characters from container output."""
    return _XML_ILLEGAL.sub("", _ANSI.sub("", text))


def tail_lines(text: str, n: int) -> list[str]:
    """The last ``n`` non-trailing lines of ``text``, cleaned of control characters."""
    lines = clean_text(text).rstrip("\n").splitlines()
    return lines[-n:] if n > 0 else []


def _failing_checks(scenario: ScenarioResult) -> list[CheckResult]:
    return [c for c in scenario.checks if c.status in ("failed", "error")]


def _failing_check_lines(scenario: ScenarioResult, head: Callable[[CheckResult], str], indent: str,
                         clean: Callable[[str], str] = str) -> list[str]:
    """Each failing check as ``HEAD: MESSAGE`` and its ``INDENTexpected:``/``INDENTobserved:``
    lines (those it has), its texts passed through ``clean``: the one layout of the text
    report and the JUnit failure body, which differ only in the head and the indent."""
    lines: list[str] = []
    for check in _failing_checks(scenario):
        first = head(check)
        lines.append(f"{first}: {clean(check.message)}" if check.message else first)
        if check.expected:
            lines.append(f"{indent}expected: {clean(check.expected)}")
        if check.observed:
            lines.append(f"{indent}observed: {clean(check.observed)}")
    return lines


def summary_line(run: RunResult) -> str:
    """``5 passed, 1 failed, 0 errors in 7.2s`` (skipped only when there are some)."""
    parts = [
        f"{run.count('passed')} passed",
        f"{run.count('failed')} failed",
        f"{run.count('error')} errors",
    ]
    skipped = run.count("skipped")
    if skipped:
        parts.append(f"{skipped} skipped")
    on = f" on {', '.join(map(str, run.engines))}" if run.engines else ""
    return f"{', '.join(parts)} in {run.duration_s:.1f}s{on}"


# ==== JSON ====


def _check_dict(check: CheckResult) -> dict[str, object]:
    out: dict[str, object] = {"name": check.name, "status": check.status, "message": check.message}
    # Expected/observed only where they say something: a passed check's are empty.
    if check.expected:
        out["expected"] = check.expected
    if check.observed:
        out["observed"] = check.observed
    out["duration_s"] = _round(check.duration_s)
    return out


def _step_dict(step: StepResult) -> dict[str, object]:
    out: dict[str, object] = {"name": step.name, "action": step.action, "status": step.status,
                              "at_s": _round(step.at_s), "duration_s": _round(step.duration_s)}
    for key in ("message", "expected", "observed"):
        if getattr(step, key):
            out[key] = getattr(step, key)
    return out


def step_lines(scenario: ScenarioResult) -> list[str]:
    """The timeline as text, one line per step: number, start offset, name, outcome."""
    lines = []
    for i, step in enumerate(scenario.steps, 1):
        when = f"+{step.at_s:.2f}s" if step.status != "not run" else "     -"
        took = f" ({step.duration_s:.2f}s)" if step.status != "not run" else ""
        line = f"step {i:>2} {when:>8} {STATUS_LABELS.get(step.status, step.status.upper()):<7} {step.name}{took}"
        detail = step.message or (f"observed {step.observed}" if step.observed else "")
        lines.append(clean_text(f"{line}: {detail}" if detail and step.status != "passed" else line))
    return lines


def _scenario_dict(scenario: ScenarioResult) -> dict[str, object]:
    out: dict[str, object] = {
        "name": scenario.name,
        "file": scenario.file,
        "status": scenario.status,
        "duration_s": _round(scenario.duration_s),
        "checks": [_check_dict(c) for c in scenario.checks],
    }
    if scenario.steps:
        out["steps"] = [_step_dict(s) for s in scenario.steps]
    if scenario.engine:
        out["engine"] = scenario.engine
    if scenario.message:
        out["message"] = scenario.message
    if scenario.tags:
        out["tags"] = list(scenario.tags)
    if scenario.logs:
        out["logs"] = {name: clean_text(text) for name, text in scenario.logs.items()}
    return out


def to_dict(run: RunResult) -> dict[str, object]:
    """The JSON report as a plain dict (the documented fields of docs/cli.md, plus run_id/skipped/extras)."""
    out: dict[str, object] = {
        "run_id": run.run_id,
        "engines": [{"name": e.name, "version": e.version} for e in run.engines],
        "summary": {
            "passed": run.count("passed"),
            "failed": run.count("failed"),
            "errors": run.count("error"),
            "skipped": run.count("skipped"),
            "skipped_by_reason": run.skips_by_reason(),
            "duration_s": _round(run.duration_s),
        },
        "scenarios": [_scenario_dict(s) for s in run.scenarios],
    }
    if len(run.engines) > 1:  # the side-by-side view: scenario -> engine -> status
        out["by_engine"] = {name: {eng: r.status for eng, r in per.items()} for name, per in side_by_side(run)}
    return out


def to_json(run: RunResult) -> str:
    """Render ``run`` as the ``--format json`` document (indented, newline-terminated)."""
    return json.dumps(to_dict(run), indent=2, ensure_ascii=False) + "\n"


# ==== JUnit XML ====
# One <testsuite> per scenario file (so a CI page groups scenarios as the library
# does), one <testcase> per scenario; the checks go into the failure body.


def _classname(file: str) -> str:
    """``scenarios/sysv-shareable.yaml`` -> ``scenarios.sysv-shareable``.

    Jenkins splits classname at the last dot into package and class, so the folder
    becomes the package and the file the class.
    """
    path = Path(file)
    parts = [p for p in path.with_suffix("").parts if p not in ("", ".", "/")]
    return ".".join(p.replace(".", "_") for p in parts) or "labctl"


def _failure_body(scenario: ScenarioResult, log_lines: int) -> str:
    lines: list[str] = []
    if scenario.message:
        lines.append(scenario.message)
    if scenario.steps:
        lines.append("timeline:")
        lines.extend(f"  {line}" for line in step_lines(scenario))
    lines.extend(_failing_check_lines(scenario, lambda c: f"[{c.status}] {c.name}", "  "))
    for name, text in scenario.logs.items():
        tail = tail_lines(text, log_lines)
        lines.append(f"--- {name}: last {len(tail)} lines of output ---")
        lines.extend(tail)
    return clean_text("\n".join(lines))


def _failure_message(scenario: ScenarioResult) -> str:
    failing = _failing_checks(scenario)
    if failing:
        first = failing[0]
        text = f"{first.name}: {first.message}" if first.message else first.name
        if len(failing) > 1:
            text += f" (and {len(failing) - 1} more)"
        return clean_text(text)
    return clean_text(scenario.message or scenario.status)


def _testcase(scenario: ScenarioResult, engine_suffix: bool = False) -> ET.Element:
    suffix = f".{scenario.engine}" if engine_suffix and scenario.engine else ""
    case = ET.Element(
        "testcase",
        {
            "name": clean_text(scenario.name),
            "classname": _classname(scenario.file) + suffix,
            "file": clean_text(scenario.file),
            "time": f"{_round(scenario.duration_s):.3f}",
        },
    )
    if scenario.status == "failed":
        node = ET.SubElement(case, "failure", {"message": _failure_message(scenario), "type": "CheckFailed"})
        node.text = _failure_body(scenario, JUNIT_LOG_LINES)
    elif scenario.status == "error":
        node = ET.SubElement(case, "error", {"message": _failure_message(scenario), "type": "ScenarioError"})
        node.text = _failure_body(scenario, JUNIT_LOG_LINES)
    elif scenario.status == "skipped":
        ET.SubElement(case, "skipped", {"message": clean_text(scenario.message)})
    if scenario.steps and scenario.status == "passed":
        out = ET.SubElement(case, "system-out")
        out.text = clean_text("timeline:\n" + "\n".join(f"  {line}" for line in step_lines(scenario)))
    return case


def _suite_attrs(name: str, scenarios: Sequence[ScenarioResult], duration: float) -> dict[str, str]:
    return {
        "name": clean_text(name),
        "tests": str(len(scenarios)),
        "failures": str(sum(s.status == "failed" for s in scenarios)),
        "errors": str(sum(s.status == "error" for s in scenarios)),
        "skipped": str(sum(s.status == "skipped" for s in scenarios)),
        "time": f"{_round(duration):.3f}",
    }


def _group_by_file(scenarios: Iterable[ScenarioResult]) -> dict[tuple[str, str], list[ScenarioResult]]:
    """(file, engine) -> its scenarios: one testsuite per file and engine."""
    groups: dict[tuple[str, str], list[ScenarioResult]] = {}
    for scenario in scenarios:
        groups.setdefault((scenario.file, scenario.engine), []).append(scenario)
    return groups


def to_junit(run: RunResult) -> str:
    """Render ``run`` as JUnit XML: ``<testsuites>`` > one ``<testsuite>`` per file.

    Attributes are those Jenkins and GitLab read (name, tests, failures, errors,
    skipped, time); failures carry expected/observed and container log tails.
    """
    root = ET.Element("testsuites", _suite_attrs("labctl", run.scenarios, run.duration_s))
    root.set("id", clean_text(run.run_id))
    versions = {e.name: str(e) for e in run.engines}
    several = len(run.engines) > 1
    for (file, engine), scenarios in _group_by_file(run.scenarios).items():
        title = f"{file} [{engine}]" if several and engine else file
        suite = ET.SubElement(
            root, "testsuite", _suite_attrs(title, scenarios, sum(s.duration_s for s in scenarios))
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "run_id", "value": clean_text(run.run_id)})
        if engine:
            ET.SubElement(props, "property", {"name": "engine", "value": clean_text(versions.get(engine, engine))})
        for scenario in scenarios:
            suite.append(_testcase(scenario, several))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# ==== text ====

_COLORS = {"passed": "32", "failed": "31", "error": "33", "skipped": "36"}


def _paint(text: str, status: str, color: bool) -> str:
    if not color:
        return text
    return f"\x1b[{_COLORS.get(status, '0')}m{text}\x1b[0m"


def _scenario_text(scenario: ScenarioResult, color: bool, width: int) -> list[str]:
    label = _paint(f"{STATUS_LABELS.get(scenario.status, scenario.status.upper()):<5}", scenario.status, color)
    lines = [f"{label} {scenario.name:<{width}}  {scenario.duration_s:6.1f}s  {scenario.file}".rstrip()]
    if scenario.status in ("passed", "skipped"):
        if scenario.status == "skipped" and scenario.message:
            lines.append(f"      {scenario.message}")
        # A lab shows what it saw, not only that it passed: the timeline, one line per check.
        lines.extend(f"      {line}" for line in step_lines(scenario))
        for check in scenario.checks:
            if check.status == "passed" and check.observed:
                seen = clean_text(check.observed)
                seen = seen if len(seen) <= OBSERVED_CHARS else seen[:OBSERVED_CHARS - 3] + "..."
                lines.append(f"      {_paint('ok', 'passed', color)} {check.name}: {seen}")
        return lines
    if scenario.message:
        lines.append(f"      {clean_text(scenario.message)}")
    lines.extend(f"      {line}" for line in step_lines(scenario))
    lines.extend(_failing_check_lines(scenario, lambda c: f"      {_paint('x', c.status, color)} {c.name}",
                                      " " * 10, clean_text))
    for name, text in scenario.logs.items():
        tail = tail_lines(text, TEXT_LOG_LINES)
        lines.append(f"      --- {name} (last {len(tail)} lines) ---")
        lines.extend(f"      | {line}" for line in tail)
    return lines


def _side_by_side_text(run: RunResult, color: bool, width: int) -> list[str]:
    """The outcomes per engine, one row per scenario (``labctl run --engine A --engine B``)."""
    names = [e.name for e in run.engines]
    lines = ["", "side by side:", (f"  {'scenario':<{width}}  " + "  ".join(f"{n:<7}" for n in names)).rstrip()]
    for name, per in side_by_side(run):
        cells = []
        for n in names:
            r = per.get(n)
            status = r.status if r else "skipped"
            cells.append(_paint(f"{STATUS_LABELS.get(status, status.upper()) if r else '-':<7}", status, color))
        differs = len({per[n].status for n in names if n in per}) > 1
        lines.append((f"  {name:<{width}}  " + "  ".join(cells)).rstrip() + ("  <- differs" if differs else ""))
    lines.append("")
    return lines


def to_text(run: RunResult, color: bool = False) -> str:
    """A human summary: one line per scenario, details for failures, a final count line."""
    width = max((len(s.name) for s in run.scenarios), default=0)
    lines: list[str] = []
    shown = None
    for scenario in run.scenarios:
        if len(run.engines) > 1 and scenario.engine != shown:
            shown = scenario.engine
            lines.append(f"== on {next((str(e) for e in run.engines if e.name == shown), shown)} ==")
        lines.extend(_scenario_text(scenario, color, width))
    if len(run.engines) > 1:
        lines.extend(_side_by_side_text(run, color, width))
    skips = run.skips_by_reason()
    if skips:  # what the machine lacks, counted: one line, the fixes are above
        lines.append("skipped: " + ", ".join(f"{n} {reason}" for reason, n in skips.items()))
    final = summary_line(run)
    if color:
        final = _paint(final, "passed" if run.ok else "failed", True)
    lines.append(final)
    return "\n".join(lines) + "\n"


# ==== dispatch and --report ====


def render(run: RunResult, fmt: str, color: bool = False) -> str:
    """Render ``run`` in ``fmt`` (text, json or junit). Raises UsageError otherwise."""
    if fmt == "json":
        return to_json(run)
    if fmt == "junit":
        return to_junit(run)
    if fmt == "text":
        return to_text(run, color)
    raise UsageError(f"unknown report format {fmt!r} (expected {', '.join(FORMATS)})")


def parse_report_spec(spec: str) -> tuple[str, str]:
    """Split ``--report FORMAT:PATH`` into (format, path). Raises UsageError."""
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise UsageError(f"--report {spec!r}: expected FORMAT:PATH, e.g. junit:out/report.xml")
    if fmt not in FORMATS:
        raise UsageError(f"--report {spec!r}: unknown format {fmt!r} (expected {', '.join(FORMATS)})")
    return fmt, path


def check_writable(specs: Sequence[tuple[str, str]]) -> None:
    """Make sure every ``--report`` file can be written (creating its folder), so a bad
    path is a usage error before the run rather than a failure after it. Raises UsageError."""
    for fmt, path in specs:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".labctl-probe.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise UsageError(f"--report {fmt}:{path}: cannot write there: {e.strerror or e}") from e
        if Path(path).is_dir():
            raise UsageError(f"--report {fmt}:{path}: is a directory; give a file path")


def write_reports(run: RunResult, specs: Sequence[tuple[str, str]]) -> list[Path]:
    """Write one report per (format, path), creating parent folders; returns the paths.

    Each file is written to a temporary sibling and renamed into place, so a reader
    (a CI collector) never sees half a report. Text reports are never coloured.
    Raises UsageError for an unknown format, LabctlError when a file cannot be written.
    """
    rendered = [(render(run, fmt, color=False), Path(path)) for fmt, path in specs]
    written: list[Path] = []
    for text, path in rendered:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                # mkstemp makes 0600 files; a report is meant to be read by others (CI).
                os.fchmod(fd, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise LabctlError(f"cannot write report {path}: {e.strerror or e}") from e
        written.append(path)
    return written
