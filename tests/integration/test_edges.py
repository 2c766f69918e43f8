"""Runner edge cases found in review: timeouts, start order by any namespace donor,
long names, and what a host-IPC scenario leaves on the host."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_run import labctl

EDGES = Path(__file__).resolve().parents[1] / "data" / "edges"


def test_a_container_past_its_timeout_is_killed_and_the_scenario_errs(shmlab_image):
    proc = labctl("run", str(EDGES / "container-timeout.yaml"), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    [s] = json.loads(proc.stdout)["scenarios"]
    assert s["status"] == "error"
    assert "'writer' ran past its timeout (1s) and was killed" in s["message"]


def test_a_network_donor_starts_before_its_joiner(shmlab_image):
    proc = labctl("run", str(EDGES / "network-donor-order.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_long_names_sharing_a_prefix_do_not_collide(shmlab_image):
    files = sorted(str(p) for p in EDGES.glob("a-very-long-*.yaml"))
    proc = labctl("run", "--jobs", "2", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def host_keys() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines if line.strip()}


def test_host_ipc_teardown_removes_the_segment_its_writer_left(shmlab_image):
    # The writer never calls IPC_RMID; killing it would leave key 0x6c616202 on the host
    # until reboot. labctl removes it (it was attached by the scenario's own workload).
    assert 0x6C616202 not in host_keys()
    proc = labctl("run", "--allow-host-ipc", str(EDGES / "host-leak.yaml"), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["scenarios"][0]["checks"]}
    assert checks["the host is left as it was"]["status"] == "passed"
    assert 0x6C616202 not in host_keys()


def test_a_devshm_file_check_alone_gets_its_probe_into_the_namespace(shmlab_image):
    # No segment/objects check looks into the writer's namespace: the file checks under
    # /dev/shm must start the probe holder themselves (they used to end in "cannot probe
    # the IPC namespace of writer: its owner did not start" while the writer ran).
    proc = labctl("run", str(EDGES / "devshm-file-only.yaml"), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [s] = json.loads(proc.stdout)["scenarios"]
    assert s["status"] == "passed", s
    assert all(c["status"] == "passed" for c in s["checks"]), s["checks"]
