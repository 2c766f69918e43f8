"""``labctl import`` end to end on the real engine: what it writes runs, and its generated
checks pass.

* the round trip over the library: for the scenarios whose compose renderings are plain
  stacks (no timeline, no refusal, no opt-in, no emulated platform, not engine-specific),
  ``labctl import compose <(labctl compose S)`` validates and runs with every generated
  check passing (one ``labctl run --jobs 2``): the plain stacks whose renderings together
  use every construct, workload and awaited event of them all (a greedy cover,
  ``round_trip_subset``; that every library scenario's import validates and keeps its IPC
  grouping is tests/unit/test_import.py's round trip);
* the root demo: ``labctl import compose docker-compose.yml > s.yaml && labctl run s.yaml``;
* a Compose file using ``extends`` (across files) and interpolation (``.env``, defaults);
* ``labctl import k8s`` of ``labctl export k8s`` output for pod scenarios, run on Docker;
* a generated check fails where the engine disagrees with the file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from labctl import scenario as scen
from tests.helpers import covering_subset, import_round_trip_constructs
from tests.integration.test_run import labctl

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "import"
POD_SCENARIOS = ("pod-shared-devshm", "pod-start-wait", "sysv-shareable", "mmap-volume", "posix-shareable")

pytestmark = [pytest.mark.integration]


def plain(path: Path) -> bool:
    """A scenario whose compose rendering is a plain stack: everything it does is in the
    services (no steps, no start: false), every container is meant to run (no refusal),
    and it needs no opt-in, no emulation and no particular engine."""
    s = scen.load_file(str(path))
    return not (s.steps or s.requires or s.engines or any(not c.start or c.platform for c in s.containers)
                or any(ch.kind == "refused" for ch in s.checks))


PLAIN = [p for p in sorted((ROOT / "scenarios").glob("*.yaml")) if plain(p)]


def round_trip_subset() -> list[Path]:
    """The smallest part of PLAIN (greedy cover) whose renderings use every compose construct,
    workload and awaited event that PLAIN's renderings use: what the importer writes (the
    containers, their order, the generated checks) follows from these; the rest of PLAIN
    repeats them with other names and sizes (tests/unit/test_compose_cover.py pins the cover)."""
    return [Path(p) for p in covering_subset(import_round_trip_constructs(PLAIN))]


def imported(kind: str, source: Path, out: Path, name: str) -> Path:
    proc = labctl("import", kind, str(source), "--name", name, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def in_process(*args: str) -> tuple[int, str, str]:
    """``labctl ARGS`` through the CLI's main in this process, from the repository root:
    exit code, stdout, stderr."""
    import contextlib
    import io

    from labctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def run_report(*paths: Path, jobs: int = 1) -> dict:
    proc = labctl("run", *map(str, paths), "--jobs", str(jobs), "--format", "json", timeout=1200)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return json.loads(proc.stdout)


def failures(report: dict) -> list[str]:
    return [f"{s['name']}: {c['name']}: {c.get('message', '')}" for s in report["scenarios"]
            for c in s["checks"] if c["status"] != "passed"] + \
        [f"{s['name']}: {s['status']}: {json.dumps(s)[:1500]}" for s in report["scenarios"]
         if s["status"] != "passed" and all(c["status"] == "passed" for c in s["checks"])]


@pytest.mark.slow
def test_round_trip_over_the_library(shmlab_image, tmp_path):
    assert len(PLAIN) >= 30  # the library's plain stacks; a filter that drops most of it proves nothing
    subset = round_trip_subset()
    rendered, out = tmp_path / "compose", tmp_path / "scenarios"
    rendered.mkdir()
    out.mkdir()
    # the renderings and imports through the CLI's main in this process (as `python -m labctl`
    # calls it; the demo test below runs both commands as processes): one interpreter start
    # per file and command was most of this test's time, the run below is what it proves
    for path in subset:
        code, stdout, stderr = in_process("compose", str(path.relative_to(ROOT)))
        assert code == 0, stderr
        compose = rendered / f"{path.stem}.yml"
        compose.write_text(stdout)
        code, _, stderr = in_process("import", "compose", str(compose), "--name", f"rt-{path.stem}",
                                     "-o", str(out / f"{path.stem}.yaml"))
        assert code == 0, stderr
    (out / "scenario.schema.json").unlink()
    report = run_report(out, jobs=2)
    assert report["summary"]["passed"] == len(subset), "\n".join(failures(report))


def test_the_demo_imports_and_runs(shmlab_image, tmp_path):
    out = tmp_path / "s.yaml"
    proc = labctl("import", "compose", "docker-compose.yml")  # as the README says: to stdout
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# yaml-language-server: $schema=")
    out.write_text(proc.stdout)
    assert "docker-compose.yml:" in proc.stderr  # the healthcheck and --human notes, located
    proc = labctl("run", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    checks = {c["name"] for c in json.loads(proc.stdout)["scenarios"][0]["checks"]}
    assert {"reader shares the IPC namespace of writer", "/dev/shm in the IPC namespace of writer is 64m (docker's default)",
            "nothing left behind"} <= checks


def test_extends_and_interpolation_stack_runs(shmlab_image, tmp_path):
    data = tmp_path / "stack"
    shutil.copytree(DATA, data)
    out = imported("compose", data / "compose.yml", tmp_path / "s.yaml", "extends-interpolation")
    text = out.read_text()
    assert "'4321'" in text and "shm_size: 32m" in text  # .env's KEY and SHM_SIZE
    report = run_report(out)
    assert report["summary"]["passed"] == 1, "\n".join(failures(report))
    names = {c["name"] for c in report["scenarios"][0]["checks"]}
    assert "/dev/shm in the IPC namespace of writer is 32m" in names
    assert "/data is the same directory in writer and loner" in names
    assert "writer and loner-ipc are in different IPC namespaces" in names


def test_a_generated_check_fails_where_the_engine_disagrees(shmlab_image, tmp_path):
    """The /dev/shm check reads the size inside the namespace: an edit that changes the
    size the scenario asks for (not the file's) is caught."""
    out = imported("compose", DATA / "compose.yml", tmp_path / "s.yaml", "disagrees")
    out.write_text(out.read_text().replace("shm_size: 32m", "shm_size: 16m"))
    report = run_report(out)
    assert report["summary"]["failed"] == 1
    assert any("devshm_capacity" in f and "16777216" in f for f in failures(report)), failures(report)


def test_k8s_exports_of_pod_scenarios_import_and_run_on_docker(shmlab_image, tmp_path):
    """Pods become a holder each (the sandbox) that their containers join."""
    outs = []
    for name in POD_SCENARIOS:
        proc = labctl("export", "k8s", f"scenarios/{name}.yaml")
        assert proc.returncode == 0, proc.stderr
        manifests = tmp_path / f"{name}.k8s.yaml"
        manifests.write_text(proc.stdout)
        outs.append(imported("k8s", manifests, tmp_path / f"{name}.yaml", f"k8s-{name}"))
    report = run_report(*outs, jobs=2)
    assert report["summary"]["passed"] == len(POD_SCENARIOS), "\n".join(failures(report))


@pytest.mark.podman
def test_imported_stacks_run_on_podman(tmp_path):
    """The same scenarios on Podman, whose /dev/shm default (64000k) is not Docker's (64m):
    the generated check of an unset size is judged per engine."""
    proc = labctl("import", "compose", "docker-compose.yml", "-o", str(tmp_path / "demo.yaml"))
    assert proc.returncode == 0, proc.stderr
    k8s = labctl("export", "k8s", "scenarios/pod-shared-devshm.yaml")
    (tmp_path / "pods.k8s.yml").write_text(k8s.stdout)
    imported("k8s", tmp_path / "pods.k8s.yml", tmp_path / "pods.yaml", "k8s-podman")
    proc = labctl("run", "--engine", "podman", str(tmp_path / "demo.yaml"), str(tmp_path / "pods.yaml"),
                  "--format", "json", timeout=600)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, "\n".join(failures(report))
    names = {c["name"] for s in report["scenarios"] for c in s["checks"]}
    assert "/dev/shm in the IPC namespace of writer is 64000k (podman's default)" in names
