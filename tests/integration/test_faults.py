"""Faults a run must survive with every report kept and nothing left: host IPC leaks of
every kind, a teardown that fails, an engine call that hangs, a probe of an owner that
exits at once. (The 3M-event flood is a benchmark: benchmarks/output_flood.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import hostipc
from tests.integration.engine_proxy import engine_proxy
from tests.helpers import wait_until
from tests.integration.test_run import ROOT, labctl

DATA = Path(__file__).resolve().parents[1] / "data" / "reliability"


@pytest.mark.alone("ipc: host: semaphores, message queues and mqueue entries on the host")
def test_host_sem_msg_and_mqueue_leaks_fail_cleanup_and_are_removed(shmlab_image):
    before = set(hostipc.host_objects())
    proc = labctl("run", "--allow-host-ipc", str(DATA / "host-leak-all.yaml"), "--format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [s] = json.loads(proc.stdout)["scenarios"]
    assert s["status"] == "failed"
    checks = {c["name"]: c for c in s["checks"]}
    cleanup = checks["the host is left as it was"]
    assert cleanup["status"] == "failed"
    for named in ("host semaphore set key 0x6c616301", "host message queue key 0x6c616302",
                  "host POSIX message queue /labctl-leak-mq"):
        assert named in cleanup["message"], cleanup["message"]
    assert cleanup["message"].count("removed by teardown") == 3
    assert all(checks[n]["status"] == "passed" for n in checks if n != "the host is left as it was")
    left = {k: o.text for k, o in hostipc.host_objects().items() if k not in before}
    assert not [t for t in left.values() if "6c6163" in t or "labctl-leak-mq" in t], left


def test_a_hung_engine_call_is_a_scenario_error_naming_it_and_the_run_goes_on(shmlab_image):
    # Every `POST /exec/ID/start` is swallowed by the proxy: the probe exec hangs forever.
    with engine_proxy(r"POST /v[0-9.]+/exec/[0-9a-f]+/start") as proxy:
        proc = labctl("run", str(DATA / "probe-hang.yaml"), str(DATA / "plain.yaml"), "--format", "json",
                      env={"DOCKER_HOST": proxy.address})
    assert proxy.held >= 1
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    hang, plain = json.loads(proc.stdout)["scenarios"]
    assert hang["status"] == "error", hang
    [check] = hang["checks"]
    assert check["status"] == "error"
    assert "docker exec /shmlab probe" in check["message"] and "no answer from the engine" in check["message"]
    assert plain["status"] == "passed", plain
    # given up at the check's own deadline (3s), not the scenario's (40s)
    bound = float(re.search(r"within ([0-9.]+)s", check["message"]).group(1))
    assert 1.0 <= bound <= 3.0, check["message"]


def test_a_failing_teardown_is_that_scenarios_error_and_the_others_report(shmlab_image, docker_client, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "run", str(DATA / "teardown-blocked.yaml"),
                             str(DATA / "plain.yaml"), "--format", "json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    blocker = None
    try:
        vols: list = []

        def volume_there() -> bool:
            vols[:] = docker_client.volumes.list(filters={"label": ["io.labctl.scenario=teardown-blocked",
                                                                    f"io.labctl.pid={proc.pid}"]})
            return bool(vols)

        assert wait_until(volume_there, 60), "the scenario's volume never appeared"
        # a container from outside the run holds the volume: the engine refuses its removal
        blocker = docker_client.containers.create(shmlab_image, ["hold"], network_mode="none",
                                                  volumes={vols[0].name: {"bind": "/data", "mode": "rw"}})
        assert wait_until(lambda: bool(list(tmp_path.glob("labctl-*-gate-*"))), 30)
        for gate in tmp_path.glob("labctl-*-gate-*"):
            (gate / "open").write_bytes(b"\0" * 68)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if blocker is not None:
            blocker.remove(force=True)
        for v in docker_client.volumes.list(filters={"label": ["io.labctl.scenario=teardown-blocked"]}):
            v.remove(force=True)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    blocked, plain = json.loads(out)["scenarios"]
    assert blocked["status"] == "error", blocked
    assert "teardown: volume" in blocked["message"] and "in use" in blocked["message"], blocked["message"]
    assert [c["status"] for c in blocked["checks"]] == ["passed"]
    assert plain["status"] == "passed", plain


def test_probes_of_owners_that_exit_at_once_give_verdicts(shmlab_image):
    # Whether the probe joins before the owner exits or finds the namespace gone, the
    # checks answer (absent) instead of erring on "cannot join a non-running container".
    for _ in range(3):
        proc = labctl("run", str(DATA / "fast-owner.yaml"), "--format", "json")
        [s] = json.loads(proc.stdout)["scenarios"]
        assert proc.returncode == 0 and s["status"] == "passed", json.dumps(s, indent=1)
