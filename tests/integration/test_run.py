"""``labctl run`` end to end on the real engine, through the console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl import scenario as scen
from tests.helpers import what_failed

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SCENARIOS = ROOT / "scenarios"


def labctl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (``python -m labctl``), from the repository root."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def library_run(request, shmlab_image, engine_name, tmp_path_factory):
    """One run of the whole scenario library on each engine (``engine_name``), in
    parallel, with every report format: on Docker the session's (``docker_library_run``,
    emulation hidden), on Podman this module's."""
    if engine_name == "docker":
        shared = request.getfixturevalue("docker_library_run")
        return shared.proc, shared.reports
    out = tmp_path_factory.mktemp(f"reports-{engine_name}")
    proc = labctl("run", "scenarios", "--engine", engine_name, "--jobs", "2", "--format", "json",
                  "--report", f"junit:{out}/junit.xml", "--report", f"text:{out}/summary.txt")
    return proc, out


def host_ipc_scenarios() -> list[Path]:
    """The library's scenarios that need ``--allow-host-ipc`` (a container in the host's IPC
    namespace): the library runs above skip them, test_the_host_ipc_scenarios_pass_given_the_flag
    runs them with nothing beside it (another test's leak guard would count their segments)."""
    return sorted(p for p in SCENARIOS.rglob("*.yaml")
                  if any(flag == "allow-host-ipc" for flag, _, _ in scen.load_file(str(p)).requires))


def test_every_library_scenario_passes(library_run, engine_name, engine_client):
    proc, _ = library_run
    assert proc.returncode == 0, what_failed(proc)
    report = json.loads(proc.stdout)
    assert [e["name"] for e in report["engines"]] == [engine_name] and report["engines"][0]["version"]
    assert {s["engine"] for s in report["scenarios"]} == {engine_name}
    run_id = report["run_id"]
    assert not engine_client.containers.list(all=True, filters={"label": [f"io.labctl.run-id={run_id}"]})
    names = {s["name"] for s in report["scenarios"]}
    files = {p.stem for p in SCENARIOS.rglob("*.yaml")}
    assert names == files  # one scenario per file, named as the file
    # passed, or skipped only where the scenario itself says it is for the other engine, or
    # (Docker's run hides emulation) the arm64 scenario, which the Podman run and the linux/arm64
    # run (test_platforms.py) run for real
    host_ipc = {p.stem for p in host_ipc_scenarios()}

    def expected_skip(s: dict) -> bool:
        return s["message"].startswith("only on ") or (
            engine_name == "docker" and s["name"] == "arm64-amd64-shared"
            and s["message"].startswith("needs linux/arm64 emulation")) or (
            s["name"] in host_ipc and "--allow-host-ipc" in s["message"])

    assert all(s["status"] == "passed" or (s["status"] == "skipped" and expected_skip(s))
               for s in report["scenarios"]), [(s["name"], s["status"]) for s in report["scenarios"]]
    if engine_name == "podman":
        assert next(s for s in report["scenarios"] if s["name"] == "arm64-amd64-shared")["status"] == "passed"


def test_json_report_matches_the_contract(library_run):
    proc, _ = library_run
    report = json.loads(proc.stdout)
    summary = report["summary"]
    assert set(summary) >= {"passed", "failed", "errors", "duration_s"}
    assert summary["passed"] + summary["skipped"] == len(report["scenarios"])
    assert summary["failed"] == 0 and summary["errors"] == 0
    for s in report["scenarios"]:
        assert set(s) >= {"name", "file", "status", "duration_s", "checks"}
        assert s["file"].startswith("scenarios/")
        assert s["checks"] or s["status"] == "skipped", s["name"]  # skipped: nothing ran (engines:, opt-ins)
        for c in s["checks"]:
            assert set(c) >= {"name", "status", "message"}


def test_junit_report_is_well_formed(library_run, engine_name):
    _, out = library_run
    root = ET.parse(out / "junit.xml").getroot()
    engines = {p.get("value", "").split()[0] for p in root.iter("property") if p.get("name") == "engine"}
    assert engines == {engine_name}
    assert root.tag == "testsuites"
    cases = 0
    for suite in root.iter("testsuite"):
        for attr in ("name", "tests", "failures", "errors", "time"):
            assert attr in suite.attrib, attr
        assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
        for case in suite.iter("testcase"):
            assert case.get("name") and case.get("classname") and case.get("time") is not None
            cases += 1
    assert cases == len(list(SCENARIOS.rglob("*.yaml")))
    assert "passed" in (out / "summary.txt").read_text() and f"on {engine_name} " in (out / "summary.txt").read_text()


def test_failing_scenario_exits_1_with_expected_and_observed(shmlab_image):
    proc = labctl("run", str(DATA / "failing" / "expects-sharing-across-private.yaml"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout
    assert "expected" in proc.stdout and "observed" in proc.stdout
    assert "ENOENT" in proc.stdout  # the reason: the reader's shmget found nothing
    assert "reader (last" in proc.stdout  # the container's output tail


def test_failing_scenario_in_json_and_junit(shmlab_image, tmp_path):
    proc = labctl("run", str(DATA / "failing"), "--format", "json", "--report", f"junit:{tmp_path}/j.xml")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    by_name = {s["name"]: s for s in report["scenarios"]}
    assert by_name["minimal-pass"]["status"] == "passed"
    bad = by_name["expects-sharing-across-private"]
    assert bad["status"] == "failed"
    failed = [c for c in bad["checks"] if c["status"] == "failed"]
    assert failed and "expected" in failed[0]["message"] and "observed" in failed[0]["message"]
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert sum(int(s.get("failures")) for s in root.iter("testsuite")) == 1


def test_filters_by_tag_and_substring(shmlab_image):
    proc = labctl("list", "--tag", "mmap")
    assert proc.returncode == 0
    assert "mmap-volume" in proc.stdout and "sysv-shareable" not in proc.stdout
    proc = labctl("run", "--tag", "pitfall", "-k", "create-trap", "--format", "json")  # both filters at once
    assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["scenarios"]] == ["sysv-create-trap"]


def test_env_variables_set_flags(shmlab_image):
    proc = labctl("run", env={"LABCTL_K": "sysv-shareable", "LABCTL_FORMAT": "json"})
    assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["scenarios"]] == ["sysv-shareable"]





@pytest.mark.alone("--allow-host-ipc: segments in the host's IPC namespace")
def test_the_host_ipc_scenarios_pass_given_the_flag(shmlab_image, engine_name, engine_client):
    files = host_ipc_scenarios()
    assert "sysv-host" in {p.stem for p in files}, files
    proc = labctl("run", *(str(p.relative_to(ROOT)) for p in files), "--engine", engine_name, "--allow-host-ipc",
                  "--format", "json")
    assert proc.returncode == 0, what_failed(proc)
    report = json.loads(proc.stdout)
    assert {s["name"]: s["status"] for s in report["scenarios"]} == {p.stem: "passed" for p in files}
    assert not engine_client.containers.list(all=True, filters={"label": [f"io.labctl.run-id={report['run_id']}"]})


@pytest.mark.alone("kept objects outlive their labctl; clean without --run removes every managed object")
def test_keep_leaves_containers_and_clean_removes_them(shmlab_image, engine_name, engine_client):
    docker_client = engine_client
    proc = labctl("run", "-k", "sysv-shareable", "--keep", env={"LABCTL_ENGINE": engine_name})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = docker_client.containers.list(all=True, filters={"label": ["io.labctl.scenario=sysv-shareable"]})
    assert kept, "--keep should leave the scenario's containers"
    for c in kept:
        assert c.labels["io.labctl.managed"] == "true" and c.labels["io.labctl.run-id"]
        assert c.labels["io.labctl.role"]
    run_ids = {c.labels["io.labctl.run-id"] for c in kept}
    proc = labctl("clean", "--engine", engine_name)
    assert proc.returncode == 0, proc.stderr
    for run_id in run_ids:  # scoped to our run: other runs may share the engine
        assert not docker_client.containers.list(all=True, filters={"label": [f"io.labctl.run-id={run_id}"]})
        assert not docker_client.volumes.list(filters={"label": [f"io.labctl.run-id={run_id}"]})


def test_opt_in_scenario_named_explicitly_is_refused(shmlab_image):
    proc = labctl("run", "scenarios/sysv-host.yaml")
    assert proc.returncode == 2
    assert "scenarios/sysv-host.yaml:" in proc.stderr and "--allow-host-ipc" in proc.stderr


def test_opt_in_scenario_in_a_folder_is_skipped_with_the_reason(shmlab_image):
    proc = labctl("run", "scenarios", "-k", "sysv-host", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    [s] = json.loads(proc.stdout)["scenarios"]
    assert s["status"] == "skipped" and "--allow-host-ipc" in s["message"]


def test_both_engines_side_by_side_show_the_default_ipc_mode(shmlab_image, podman_client):
    """The lesson of default-ipc-mode: one file, refused on Docker, joined on Podman."""
    assert podman_client is not None, "Podman's API service is needed (see .ci/run)"
    proc = labctl("run", "scenarios/default-ipc-mode.yaml", "--engine", "docker", "--engine", "podman",
                  "--format", "json")
    assert proc.returncode == 0, what_failed(proc)
    report = json.loads(proc.stdout)
    assert [e["name"] for e in report["engines"]] == ["docker", "podman"]
    assert report["by_engine"] == {"default-ipc-mode": {"docker": "passed", "podman": "passed"}}
    checks = {s["engine"]: {c["name"]: c["status"] for c in s["checks"]} for s in report["scenarios"]}
    refused = "Docker refuses to let the reader join the donor's private (default) namespace"
    assert checks["docker"][refused] == "passed" and checks["podman"][refused] == "skipped"
    joined = "Podman puts both in one IPC namespace"
    assert checks["podman"][joined] == "passed" and checks["docker"][joined] == "skipped"
    text = labctl("run", "scenarios/default-ipc-mode.yaml", "--engine", "docker", "--engine", "podman")
    assert "side by side:" in text.stdout and "default-ipc-mode  PASS     PASS" in text.stdout
