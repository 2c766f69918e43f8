"""Faults a run must survive with every report kept and nothing left: host IPC leaks of
every kind, a teardown that fails, an engine call that hangs, a probe of an owner that
exits at once. (The 3M-event flood is a benchmark: benchmarks/output_flood.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration import hostipc
from tests.integration.test_run import labctl

DATA = Path(__file__).resolve().parents[1] / "data" / "reliability"


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
