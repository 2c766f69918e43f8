"""Runner edge cases found in review: timeouts, start order by any namespace donor,
long names, and what a host-IPC scenario leaves on the host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.alone("ipc: host: a segment in the host's IPC namespace")
def test_host_ipc_teardown_removes_the_segment_its_writer_left(shmlab_image):
    # The writer never calls IPC_RMID; killing it would leave key 0x6c616202 on the host
    # until reboot. labctl removes it (it was attached by the scenario's own workload).
    # The sensor (not a shmlab workload) leaves a segment and a /dev/shm object that
    # labctl cannot tell from the host's own: the cleanup check names them and the exact
    # commands that remove them, which this test runs.
    assert not {0x6C616202, 0x6C616203} & host_keys()
    proc = labctl("run", "--allow-host-ipc", str(EDGES / "host-leak.yaml"), "--format", "json")
    try:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        checks = {c["name"]: c for c in json.loads(proc.stdout)["scenarios"][0]["checks"]}
        cleanup = checks.pop("the host is left as it was")
        assert all(c["status"] == "passed" for c in checks.values()), checks
        assert cleanup["status"] == "failed"
        message = cleanup["message"]
        assert "0x6c616202" not in message and "host segment key 0x6c616203" in message, message
        assert "host /dev/shm/labctl-leak-sensor" in message, message
        [shmid] = [int(line.split()[1]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
                   if line.split() and int(line.split()[0]) == 0x6C616203]
        commands = message.split("with: ", 1)[1]
        assert commands == f"ipcrm -m {shmid} && rm /dev/shm/labctl-leak-sensor", message
        done = subprocess.run(["sh", "-c", commands], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    finally:
        _remove_sensor_objects()
    assert not {0x6C616202, 0x6C616203} & host_keys()
    assert not Path("/dev/shm/labctl-leak-sensor").exists()


def _remove_sensor_objects() -> None:
    """What the sensor of host-leak.yaml leaves, if the printed commands did not run."""
    for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]:
        if line.split() and int(line.split()[0]) == 0x6C616203:
            subprocess.run(["ipcrm", "-m", line.split()[1]], check=False, capture_output=True)
    Path("/dev/shm/labctl-leak-sensor").unlink(missing_ok=True)


def test_a_devshm_file_check_alone_gets_its_probe_into_the_namespace(shmlab_image):
    # No segment/objects check looks into the writer's namespace: the file checks under
    # /dev/shm must start the probe holder themselves (they used to end in "cannot probe
    # the IPC namespace of writer: its owner did not start" while the writer ran).
    proc = labctl("run", str(EDGES / "devshm-file-only.yaml"), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [s] = json.loads(proc.stdout)["scenarios"]
    assert s["status"] == "passed", s
    assert all(c["status"] == "passed" for c in s["checks"]), s["checks"]
