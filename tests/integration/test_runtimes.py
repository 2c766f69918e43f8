"""OCI runtimes on the real engines: gVisor (runsc) observed from inside its sandboxes, and a
missing runtime (crun is never installed here) skipped or refused with the reason and the fix.

.ci/run installs runsc and registers it (Docker: daemon.json; Podman: a service of its own);
without it these tests FAIL with the fix, they never skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.runtime import oci

ROOT = Path(__file__).resolve().parents[2]

# Two gVisor sandboxes that share nothing, although the engine accepted ipc: container:. The
# reader uses IPC_CREAT (the tutorial's reader): it gets a fresh, zeroed segment 1234 in its
# own sandbox. Both then hold, so the host-side view can be compared with labctl's.
APART = """\
version: 1
name: gvisor-apart
description: two gVisor sandboxes joined by ipc container share nothing
containers:
  writer:
    workload: sysv-writer
    args: [--count, 0, --interval, 50ms]
    ipc: shareable
    runtime: runsc
  reader:
    workload: sysv-reader
    args: [--create, --reads, 2, --interval, 50ms, --hold, attached]
    ipc: container:writer
    runtime: runsc
    after: {writer: attached}
checks:
  - name: labctl must not call the sandboxes one namespace
    namespace: {containers: [writer, reader], same: true}
    timeout: 2s
  - name: the reader sees its own zeroed segment, not the writer's
    segment: {in: reader, key: 1234, present: true, nattch: 1, layout: conn_stat, fields: {count: 0, ip: ""}}
  - name: the writer's segment is counting in the writer's sandbox
    segment: {in: writer, key: 1234, present: true, nattch: 1, layout: conn_stat, fields: {count: {gt: 0}}}
  - name: one segment in the reader's sandbox, seen from inside it
    objects: {in: reader, shm: 1}
  - name: no POSIX object in the /dev/shm the reader sees
    objects: {in: reader, devshm_files: 0}
"""


def labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def runsc_ready(engine_name: str, engine_client) -> None:
    from labctl.runtime import Engine

    eng = Engine.connect(engine_name)
    try:
        a = oci.availability("runsc", engine_name, eng.oci_runtimes())
    finally:
        eng.close()
    if not a.ok:
        pytest.fail(a.message() + " (.ci/run sets this up)", pytrace=False)


@pytest.mark.alone("a --keep run: its objects outlive their labctl")
def test_gvisor_sandboxes_are_observed_from_inside(runsc_ready, engine_name, engine_client, tmp_path: Path) -> None:
    f = tmp_path / "gvisor-apart.yaml"
    f.write_text(APART)
    proc = labctl("run", str(f), "--engine", engine_name, "--format", "json", "--keep")
    report = json.loads(proc.stdout)
    run_id = report["run_id"]
    try:
        checks = {c["name"]: c for c in report["scenarios"][0]["checks"]}
        same = checks["labctl must not call the sandboxes one namespace"]
        assert same["status"] == "failed", same
        assert "gvisor-sandbox:" in same["message"] or "gvisor-sandbox:" in json.dumps(same)
        for name in ("the reader sees its own zeroed segment, not the writer's",
                     "the writer's segment is counting in the writer's sandbox",
                     "one segment in the reader's sandbox, seen from inside it",
                     "no POSIX object in the /dev/shm the reader sees"):
            assert checks[name]["status"] == "passed", checks[name]
        # The trap labctl avoided: the engine says the reader joined the writer's IPC namespace,
        # and inside both sandboxes /proc/self/ns/ipc is unreadable ("unknown" in both start
        # events): comparing what the programs print, or the engine's word, would say "same".
        seen = {}
        for c in engine_client.containers.list(all=True, filters={"label": [f"io.labctl.run-id={run_id}"]}):
            role = c.labels.get("io.labctl.role")
            if role in ("writer", "reader"):
                start = next(json.loads(ln) for ln in c.logs(stdout=True, stderr=False).decode().splitlines()
                             if ln.startswith("{") and '"start"' in ln)
                seen[role] = (c.attrs["HostConfig"]["IpcMode"], start["ipcns"])
        assert seen["reader"][0].startswith("container:") and seen["writer"][0] == "shareable", seen
        assert seen["reader"][1] == seen["writer"][1] == "unknown", seen
    finally:
        clean = labctl("clean", "--run", run_id, "--engine", engine_name)
        assert clean.returncode == 0, clean.stderr


CRUN = """\
version: 1
name: needs-crun
description: a container on crun
containers:
  c: {workload: hold, runtime: crun}
checks:
  - exit: {container: c, code: 0}
"""


@pytest.mark.skipif(shutil.which("crun") is not None, reason="crun is installed here: nothing is missing")
def test_a_missing_runtime_is_skipped_in_a_folder_and_refused_by_name(engine_name, tmp_path: Path) -> None:
    (tmp_path / "needs-crun.yaml").write_text(CRUN)
    folder = labctl("run", str(tmp_path), "--engine", engine_name, "--format", "json")
    assert folder.returncode == 0, folder.stderr
    s = json.loads(folder.stdout)["scenarios"][0]
    assert s["status"] == "skipped" and "runtime crun is not available" in s["message"] and "fix:" in s["message"]
    named = labctl("run", str(tmp_path / "needs-crun.yaml"), "--engine", engine_name)
    assert named.returncode == 3 and "runtime crun is not available" in named.stderr


def test_the_committed_runtime_table_is_what_the_runs_give(runsc_ready, engine_name) -> None:
    """docs/runtimes.md's mechanism x runtime table, this engine's columns, against real runs."""
    from tests import runtime_table

    for runtime in runtime_table.RUNTIMES:
        bad = runtime_table.mismatches(engine_name, runtime)
        assert not bad, "\n".join(bad)
