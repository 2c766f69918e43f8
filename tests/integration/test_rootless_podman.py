"""The library on a rootless user's Podman (``labctl run --engine podman`` with CONTAINER_HOST at
that user's socket), and what differs there: what a rootless engine cannot do is skipped in a
folder run and refused by name with the steps; the owner of a shared object is the container's
uid inside but the user's (or a subordinate) uid on the host; a rootless engine cannot join a
rootful container's namespace. .ci/run sets the rootless user and its services up; without
them these tests FAIL (``rootless_podman``), they never skip. The leak guard watches the
rootless socket too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
# What a rootless engine runs like a rootful one: sharing, uids, host IPC, gVisor.
RUNS = ("sysv-shareable", "posix-shareable", "sysv-uid-mismatch", "sysv-host", "ns-identity",
        "gvisor-sysv-not-shared")
# What needs a cgroup controller a rootless engine on cgroup v1 does not have.
CGROUP = {"shm-oom-killed-writer": "memory", "pause-freezes-writer": "freezer"}


def labctl(address: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINER_HOST": address}
    env.pop("DOCKER_HOST", None)
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.fixture(scope="module")
def privileges(rootless_podman: str, monkeypatch_module):  # noqa: ANN201 - labctl's Privileges
    from labctl.runtime import Engine

    monkeypatch_module.setenv("CONTAINER_HOST", rootless_podman)
    eng = Engine.connect("podman")
    try:
        yield eng.privileges(), eng.oci_runtimes()
    finally:
        eng.close()


@pytest.fixture(scope="module")
def monkeypatch_module():  # noqa: ANN201
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_service_is_rootless_and_has_gvisor(privileges) -> None:
    priv, runtimes = privileges
    assert priv.rootless and priv.user != "root", priv
    assert "runsc" in runtimes, f"no rootless runsc service beside the socket ({runtimes}); .ci/run starts it"


@pytest.mark.alone("--allow-host-ipc: segments in the host's IPC namespace")
def test_library_scenarios_pass_rootless_and_leave_nothing(rootless_podman: str, rootless_client) -> None:
    files = [str(LIBRARY / f"{name}.yaml") for name in RUNS]
    proc = labctl(rootless_podman, "run", *files, "--engine", "podman", "--allow-host-ipc", "--format", "json")
    report = json.loads(proc.stdout)
    status = {s["name"]: (s["status"], s.get("message", "")) for s in report["scenarios"]}
    assert proc.returncode == 0 and all(st == "passed" for st, _ in status.values()), (status, proc.stderr[-2000:])
    mine = {"label": [f"io.labctl.run-id={report['run_id']}"]}
    assert rootless_client.containers.list(all=True, filters=mine) == []
    assert rootless_client.volumes.list(filters=mine) == []


def test_what_rootless_cannot_do_is_skipped_in_a_folder_and_refused_by_name(rootless_podman: str, privileges,
                                                                               tmp_path: Path) -> None:
    priv, _ = privileges
    for name in (*CGROUP, "sysv-shareable"):
        shutil.copy(LIBRARY / f"{name}.yaml", tmp_path)
    folder = labctl(rootless_podman, "run", str(tmp_path), "--engine", "podman", "--format", "json")
    by_name = {s["name"]: s for s in json.loads(folder.stdout)["scenarios"]}
    assert folder.returncode == 0, folder.stderr[-2000:]
    assert by_name["sysv-shareable"]["status"] == "passed"
    for name, controller in CGROUP.items():
        if priv.controllers is not None and controller in priv.controllers:
            assert by_name[name]["status"] == "passed", by_name[name]  # delegated: it runs
            continue
        s = by_name[name]
        assert s["status"] == "skipped" and s["message"].startswith("needs a rootful engine ("), s
        assert f"cgroup {controller} controller" in s["message"] and "to enable: " in s["message"], s
    if priv.controllers is not None and "memory" not in priv.controllers:
        named = labctl(rootless_podman, "run", str(tmp_path / "shm-oom-killed-writer.yaml"), "--engine", "podman")
        assert named.returncode == 3, named.stderr
        assert "Enable it (as root), then run again:" in named.stderr and "unset CONTAINER_HOST" in named.stderr


OWNERS = """\
version: 1
name: rootless-owners
description: three holders of 0600 segments, as root, as uid 1000 and as labctl's default nobody
containers:
  root-owner:
    workload: sysv-writer
    args: [--mode, "0600", --count, 0, --interval, 100ms]
    user: "0:0"
    ipc: shareable
  nobody-owner:
    workload: sysv-writer
    args: [--key, 1236, --mode, "0600", --count, 0, --interval, 100ms]
    ipc: container:root-owner
  uid-owner:
    workload: sysv-writer
    args: [--key, 1235, --mode, "0600", --count, 0, --interval, 100ms]
    user: "1000:1000"
    ipc: container:root-owner
checks:
  - segment: {in: root-owner, key: 1234, perms: 0600, nattch: 1}
  - segment: {in: root-owner, key: 1235, perms: 0600, nattch: 1}
  - segment: {in: root-owner, key: 1236, perms: 0600, nattch: 1}
"""


def _host_view(pid: int) -> dict[int, tuple[int, int]]:
    """key -> (uid, cuid) of the segments in the IPC namespace of host pid ``pid``, as the
    host sees them (root's /proc/sysvipc/shm, read in that namespace)."""
    done = subprocess.run(["nsenter", f"--ipc=/proc/{pid}/ns/ipc", "cat", "/proc/sysvipc/shm"],
                          capture_output=True, text=True, check=True)
    head, *rows = [ln.split() for ln in done.stdout.splitlines()]
    col = {name: i for i, name in enumerate(head)}
    return {int(r[col["key"]]): (int(r[col["uid"]]), int(r[col["cuid"]])) for r in rows}


@pytest.mark.alone("a --keep run: its objects outlive their labctl")
def test_owners_are_the_containers_uids_inside_and_the_users_on_the_host(rootless_podman: str, rootless_client,
                                                                         tmp_path: Path) -> None:
    """Root in a rootless container is the engine's user on the host; uid N > 0 is a subordinate
    uid of that user (its /etc/subuid range start + N - 1: uid 1000 and labctl's default
    workload user nobody, 65534, included). Inside, the probe sees 0, 1000 and 65534."""
    f = tmp_path / "owners.yaml"
    f.write_text(OWNERS)
    proc = labctl(rootless_podman, "run", str(f), "--engine", "podman", "--format", "json", "--keep")
    report = json.loads(proc.stdout)
    run_id = report["run_id"]
    try:
        assert report["scenarios"][0]["status"] == "passed", report["scenarios"][0]
        holder = next(c for c in rootless_client.containers.list(filters={"label": [f"io.labctl.run-id={run_id}"]})
                      if c.labels.get("io.labctl.role") == "root-owner")
        pid = int(holder.attrs["State"]["Pid"])
        inside = rootless_client.containers.run(
            holder.image.id, ["probe", "--segments"], ipc_mode=f"container:{holder.id}", network_mode="none",
            cap_add=["IPC_OWNER"], remove=True, labels={"io.labctl.managed": "true", "io.labctl.run-id": run_id})
        probe = json.loads(inside.decode().splitlines()[-1])
        seen_inside = {s["key"]: s["uid"] for s in probe["segments"]}
        user_uid = os.stat(rootless_podman[len("unix://"):]).st_uid
        sub_start = next(int(ln.split(":")[1]) for ln in Path("/etc/subuid").read_text().splitlines()
                         if ln.split(":")[0] in (_user(user_uid), str(user_uid)))
        assert seen_inside == {1234: 0, 1235: 1000, 1236: 65534}, probe
        assert _host_view(pid) == {1234: (user_uid, user_uid), 1235: (sub_start + 999, sub_start + 999),
                                   1236: (sub_start + 65533, sub_start + 65533)}
    finally:
        clean = labctl(rootless_podman, "clean", "--run", run_id, "--engine", "podman")
        assert clean.returncode == 0, clean.stderr


def _user(uid: int) -> str:
    import pwd

    return pwd.getpwuid(uid).pw_name


def test_a_rootless_engine_cannot_join_a_rootful_containers_namespace(rootless_podman: str, rootless_client,
                                                                     podman_client) -> None:
    """Two engines, two sets of containers: the rootless one does not know the rootful donor's
    name (and may not enter its namespace by path either: it is owned by the host's user namespace).
    Either engine missing FAILS, saying how to start it (``rootless_podman`` for the rootless one)."""
    if podman_client is None:
        from labctl.runtime.lookup import podman_start_hint

        pytest.fail("the rootful Podman's API service is not reachable. " + podman_start_hint(), pytrace=False)
    labels = {"io.labctl.managed": "true", "io.labctl.pid": str(os.getpid()), "io.labctl.role": "donor"}
    def workload_images(client) -> set[str]:  # noqa: ANN001 - an SDK client
        return {t.split("/", 1)[-1] for img in client.images.list() for t in img.tags if "labctl/shmlab:" in t}

    # a workload image both engines hold (others, e.g. another test's linux/386 one, may be on one only)
    both = sorted(workload_images(podman_client) & workload_images(rootless_client))
    assert both, "no workload image on both the rootful and the rootless Podman"
    image = both[0]
    donor = podman_client.containers.run(image, ["hold"], ipc_mode="shareable", network_mode="none", detach=True,
                                         labels=labels, name=f"labctl-test-rootful-donor-{os.getpid()}")
    try:
        with pytest.raises(docker.errors.APIError) as refused:
            rootless_client.containers.create(image, ["probe", "--ns"], network_mode="none",
                                              ipc_mode=f"container:{donor.name}",
                                              labels={**labels, "io.labctl.role": "joiner"})
        assert "no such container" in str(refused.value) or "no container with name" in str(refused.value)
    finally:
        donor.remove(force=True)


def test_a_keep_id_joiner_is_refused_and_a_keep_id_donor_is_joined(rootless_podman: str) -> None:
    """The rootless lesson pair: the witness (the runtime's refusal) can only pass when the
    join fails, and the twin (same two user namespaces, roles swapped) reads."""
    from labctl import scenario as scen
    from tests.integration.test_library import asserts_a_failure

    pitfall, twin = (scen.load_file(str(LIBRARY / f"{n}.yaml"))
                     for n in ("userns-join-refused", "userns-join-keep-id-donor"))
    witness = next(c for c in pitfall.checks if c.kind == "refused")
    assert asserts_a_failure(witness) and twin.name in pitfall.description
    proc = labctl(rootless_podman, "run", pitfall.file, twin.file, "--engine", "podman", "--format", "json")
    report = {s["name"]: s for s in json.loads(proc.stdout)["scenarios"]}
    assert proc.returncode == 0, (report, proc.stderr[-2000:])
    checks = {c["name"]: c for c in report[pitfall.name]["checks"]}
    assert checks[witness.name]["status"] == "passed" and "operation not permitted" in checks[witness.name]["observed"]
    assert report[twin.name]["status"] == "passed", report[twin.name]


def test_the_rootless_columns_of_the_runtime_table_are_what_the_runs_give(rootless_podman: str) -> None:
    from tests import runtime_table

    for runtime in runtime_table.RUNTIMES:
        bad = runtime_table.mismatches("rootless podman", runtime)
        assert not bad, "\n".join(bad)
