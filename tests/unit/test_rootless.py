"""A rootless engine, without one: where labctl looks for a rootless user's Podman and what it
says when none listens (as root too), the runtime services beside that user's socket, what
the engine reports of itself (``Engine.privileges``), and the ``privilege`` requirement: a
scenario needing what a rootless engine cannot do (memory limits, pause without a delegated
cgroup) is skipped in a folder and refused by name, with the reason and the steps; one needing
a rootless engine (``userns: keep-id``) likewise on a rootful Podman."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import passing_run_all

from labctl import cli, runner
from labctl.errors import EXIT_ENVIRONMENT
from labctl.runtime import clean as cleanup
from labctl.runtime import lookup, oci
from labctl.runtime.engine import Privileges
from labctl.scenario import load_text, requirements
from labctl.scenario.requirements import Machine

ROOTLESS = Machine(engine="podman", arch="x86_64", rootless=True, cgroup="v1", controllers=frozenset(),
                   engine_user="labctl-rootless")
ROOTFUL = Machine(engine="podman", arch="x86_64")

MEMORY = """\
version: 1
name: capped
description: a memory limit and an OOM kill
containers:
  w: {workload: devshm-fill, args: [--size, 100m], memory: 48m, shm_size: 256m}
checks:
  - exit: {container: w, oom_killed: true}
"""
PAUSE = """\
version: 1
name: frozen
description: a pause step
containers:
  w: {workload: sysv-writer, ipc: shareable, args: [--count, 0]}
steps:
  - pause: {container: w}
  - unpause: {container: w}
checks:
  - exit: {container: w, code: 0}
"""
KEEP_ID = """\
version: 1
name: own-uid
description: the user's own uid inside
containers:
  w: {workload: sysv-writer, ipc: shareable, userns: keep-id}
checks:
  - exit: {container: w, code: 0}
"""
PLAIN = """\
version: 1
name: plain
description: nothing a rootless engine lacks
containers:
  w: {workload: sysv-writer, ipc: shareable, user: "1000:1000"}
checks:
  - exit: {container: w, code: 0}
"""


# ==== where the rootless service is, and how to start it ====


def test_a_rootless_socket_is_started_as_its_user_even_by_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(lookup, "user_name", lambda uid: "alice" if uid == 1234 else "USER")
    hint = lookup.podman_start_hint("unix:///run/user/1234/podman/podman.sock")
    assert "rootless API service of alice (uid 1234)" in hint
    assert "install -d -m 0700 -o 1234 -g 1234 /run/user/1234 /run/user/1234/podman" in hint
    assert ("runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1234 sh -c 'cd /tmp && exec podman system service "
            "--time=0 unix:///run/user/1234/podman/podman.sock' &") in hint
    assert "subuid" in hint and "uidmap" in hint
    # the rootful socket, as before
    assert "cd /tmp && podman system service --time=0 unix:///run/podman/podman.sock &" in lookup.podman_start_hint()


def test_the_owner_of_a_rootless_socket(tmp_path: Path) -> None:
    assert lookup.rootless_owner("unix:///run/user/1001/podman/podman.sock") == 1001
    assert lookup.rootless_owner("unix:///run/podman/podman.sock") is None
    assert lookup.rootless_owner("tcp://10.0.0.1:8080") is None
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:  # an existing socket: its owner (root's own socket: not rootless)
        assert lookup.rootless_owner(f"unix://{path}") == (os.getuid() or None)
    finally:
        s.close()


def test_connect_names_the_rootless_socket_it_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.errors import EngineError
    from labctl.runtime import Engine

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("CONTAINER_HOST", "unix:///run/user/4242/podman/podman.sock")
    with pytest.raises(EngineError) as e:
        Engine.connect("podman")
    msg = str(e.value)
    assert e.value.exit_code == EXIT_ENVIRONMENT
    assert "looked for unix:///run/user/4242/podman/podman.sock" in msg
    assert "XDG_RUNTIME_DIR=/run/user/4242" in msg and "runuser -u " in msg


def test_runtime_services_sit_beside_the_engine_socket() -> None:
    assert oci.podman_runtime_socket("runsc") == "/run/podman/podman-runsc.sock"
    assert oci.podman_runtime_socket("runsc", "unix:///run/podman/podman.sock") == "/run/podman/podman-runsc.sock"
    assert oci.podman_runtime_socket("runsc", "unix:///run/user/1001/podman/podman.sock") == \
        "/run/user/1001/podman/podman-runsc.sock"
    assert oci.podman_runtime_socket("runsc", "tcp://h:1") == "/run/podman/podman-runsc.sock"


def test_a_rootless_runtime_service_is_started_as_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(lookup, "user_name", lambda uid: "alice")
    a = oci.availability("runsc", "podman", {"runc": "default"}, which=lambda n: "/usr/bin/runsc",
                         address="unix:///run/user/1234/podman/podman.sock")
    assert not a.ok and "unix:///run/user/1234/podman/podman-runsc.sock" in a.reason
    assert "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1234 sh -c 'cd /tmp && exec podman --runtime runsc " \
           "--runtime-flag network=none --runtime-flag ignore-cgroups system service --time=0 " \
           "unix:///run/user/1234/podman/podman-runsc.sock'" in a.fix


# ==== what the engine says of itself ====


class _Info:
    def __init__(self, compat: dict, libpod: dict | None = None) -> None:
        self.compat, self.libpod = compat, libpod

    def info(self) -> dict:
        return self.compat


def test_docker_reads_rootless_from_its_security_options() -> None:
    from labctl.runtime.docker_engine import DockerEngine

    def priv(info: dict) -> Privileges:
        eng = DockerEngine.__new__(DockerEngine)
        eng.client, eng.address = _Info(info), "unix:///x"
        return eng.privileges()

    assert priv({"SecurityOptions": ["name=seccomp,profile=builtin"], "CgroupVersion": "1"}) == Privileges(False, "v1")
    p = priv({"SecurityOptions": ["name=rootless"], "CgroupVersion": "1", "CgroupDriver": "none", "MemoryLimit": True})
    assert p.rootless and p.controllers == frozenset()
    p = priv({"SecurityOptions": ["name=rootless"], "CgroupVersion": "2", "CgroupDriver": "systemd",
              "MemoryLimit": True, "PidsLimit": True})
    assert p.controllers == {"memory", "pids", "freezer"}


def test_podman_reads_rootless_from_libpod_info() -> None:
    from labctl.runtime.podman_engine import PodmanEngine

    def priv(host: dict, address: str = "unix:///run/user/1001/podman/podman.sock") -> Privileges:
        eng = PodmanEngine.__new__(PodmanEngine)
        eng.address = address
        eng._libpod = lambda method, path, **_: {"host": host}  # type: ignore[method-assign]
        return eng.privileges()

    p = priv({"security": {"rootless": True}, "cgroupVersion": "v1", "cgroupControllers": []})
    assert (p.rootless, p.cgroup, p.controllers) == (True, "v1", frozenset())
    p = priv({"security": {"rootless": True}, "cgroupVersion": "v2", "cgroupControllers": ["memory", "pids"]})
    assert p.controllers == {"memory", "pids", "freezer"}
    p = priv({"security": {"rootless": False}, "cgroupVersion": "v1", "cgroupControllers": ["memory"]},
             "unix:///run/podman/podman.sock")
    assert (p.rootless, p.controllers, p.user) == (False, None, "root")


# ==== the privilege requirement ====


def test_memory_limits_need_a_rootful_engine_on_cgroup_v1() -> None:
    s = load_text(MEMORY, "m.yaml")
    found = requirements.unmet(s, ROOTLESS, engine=True)
    assert {u.need.value for u in found} == {"memory"} and found[0].reason == "needs a rootful engine"
    u = found[0]
    assert "rootless (as labctl-rootless)" in u.detail and "cgroup v1 delegates no controller" in u.detail
    assert "unset CONTAINER_HOST" in u.fix and any("unified_cgroup_hierarchy" in st for st in u.steps)
    assert requirements.unmet(s, ROOTFUL, engine=True) == []
    delegated = Machine(engine="podman", rootless=True, cgroup="v2", controllers=frozenset({"memory", "freezer"}))
    assert requirements.unmet(s, delegated, engine=True) == []


def test_pause_needs_the_freezer() -> None:
    s = load_text(PAUSE, "p.yaml")
    (u,) = requirements.unmet(s, ROOTLESS, engine=True)
    assert u.need.value == "freezer" and "pause/unpause needs the cgroup freezer controller" in u.detail
    v2_no_delegation = Machine(engine="podman", rootless=True, cgroup="v2", controllers=frozenset())
    (u,) = requirements.unmet(s, v2_no_delegation, engine=True)
    assert "not delegated" in u.detail
    assert requirements.unmet(s, ROOTFUL, engine=True) == []


def test_keep_id_needs_a_rootless_podman() -> None:
    s = load_text(KEEP_ID, "k.yaml")
    (u,) = requirements.unmet(s, ROOTFUL, engine=True)
    assert u.reason == "only on a rootless engine" and "only supported in rootless mode" in u.detail
    assert "CONTAINER_HOST=unix:///run/user/UID/podman/podman.sock" in u.fix
    assert requirements.unmet(s, ROOTLESS, engine=True) == []


def test_a_scenario_a_rootless_engine_can_run_is_not_held_back() -> None:
    assert requirements.unmet(load_text(PLAIN, "x.yaml"), ROOTLESS, engine=True) == []


# ==== labctl run on a fake rootless engine ====


class RootlessEngine:
    name = "podman"
    address = "unix:///run/user/1001/podman/podman.sock"

    def describe(self) -> str:
        return "podman 4.3.1"

    def close(self) -> None:
        pass

    def architecture(self) -> str:
        return "x86_64"

    def privileges(self) -> Privileges:
        return Privileges(True, "v1", frozenset(), "labctl-rootless")

    def oci_runtimes(self) -> dict[str, str]:
        return {"runc": "default"}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    folder = tmp_path / "lib"
    folder.mkdir()
    for name, text in (("capped", MEMORY), ("frozen", PAUSE), ("plain", PLAIN)):
        (folder / f"{name}.yaml").write_text(text)
    calls: list[str] = []
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: RootlessEngine())
    monkeypatch.setattr(cli.common, "ensure_image", lambda *_a, **_k: calls.append("build") or SimpleNamespace(image="img"))
    monkeypatch.setattr(cleanup, "remove_stale", lambda engine: ([], []))

    monkeypatch.setattr(runner, "run_all", passing_run_all(calls))
    return SimpleNamespace(folder=folder, calls=calls)


def test_a_folder_run_on_a_rootless_engine_skips_with_the_fix(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder), "--engine", "podman", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert by_name["plain"]["status"] == "passed"
    for name in ("capped", "frozen"):
        assert by_name[name]["status"] == "skipped"
        assert "needs a rootful engine" in by_name[name]["message"] and "to enable: " in by_name[name]["message"]
    assert doc["summary"]["skipped_by_reason"] == {"needs a rootful engine": 2}
    assert lab.calls[-1] == "run plain"


def test_named_it_is_refused_with_the_steps(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder / "capped.yaml"), "--engine", "podman"]) == 3
    err = capsys.readouterr().err
    assert "is rootless (as labctl-rootless)" in err and "(scenario capped," in err
    assert "Enable it (as root), then run again:" in err and "systemd.unified_cgroup_hierarchy=1" in err
    assert lab.calls == []


# ==== a rootless container's process, seen from the host ====


def test_a_process_without_a_container_cgroup_is_found_through_conmon(tmp_path: Path) -> None:
    """A rootless engine on cgroup v1 leaves its containers in its user's cgroup: the
    container's id is then on the command line of its conmon ancestor."""
    from labctl.runtime import hostproc

    cid = "c" * 64
    proc = tmp_path / "proc"
    for pid, ppid, cmd, cgroup in ((40, 30, "shmlab hold", "4:memory:/\n0::/\n"),
                                   (30, 1, f"/usr/bin/conmon --api-version 1 -c {cid} -u {cid}", "0::/\n"),
                                   (50, 1, "bash", "0::/\n")):
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} (x y) S {ppid} 0 0\n")
        (d / "cmdline").write_text(cmd.replace(" ", "\0"))
        (d / "cgroup").write_text(cgroup)
    assert cid in hostproc.container_trail(40, str(proc))
    assert hostproc.container_of(40, [cid], {cid: "writer"}, str(proc)) == "writer"
    assert hostproc.container_of(50, [cid], {cid: "writer"}, str(proc)) is None


HOST_NS = """\
version: 1
name: beside-host
description: compares with the host's namespace
containers:
  w: {workload: sysv-writer, ipc: shareable}
checks:
  - namespace: {containers: [w, host], same: false}
"""


def test_the_host_namespace_on_a_rootless_engine_needs_dev_mqueue() -> None:
    s = load_text(HOST_NS, "h.yaml")
    no_mqueue = Machine(engine="podman", rootless=True, cgroup="v1", controllers=frozenset(), host_mqueue=False)
    (u,) = requirements.unmet(s, no_mqueue, engine=True)
    assert u.reason == "needs /dev/mqueue on the engine host" and "statfs /dev/mqueue" in u.detail
    assert u.steps == ("mkdir -p /dev/mqueue && mount -t mqueue mqueue /dev/mqueue",)
    assert requirements.unmet(s, ROOTLESS, engine=True) == []  # mounted
    rootful = Machine(engine="podman", host_mqueue=False)  # a rootful engine mounts its own
    assert requirements.unmet(s, rootful, engine=True) == []
    assert requirements.unmet(load_text(PLAIN, "x.yaml"), no_mqueue, engine=True) == []


def test_a_runtime_refusal_at_the_first_attach_is_the_engines_refusal() -> None:
    """Podman runs the OCI runtime's create when a container is first attached: a keep-id
    joiner of another user namespace's IPC namespace fails there, and that is a refusal of
    the container (the ``refused`` check reads it), not an engine failure."""
    import docker.errors

    from labctl.errors import ContainerStartError, EngineError
    from labctl.runtime.docker_container import DockerContainer

    def api(message: str) -> SimpleNamespace:
        def attach_socket(*_a, **_k):
            raise docker.errors.APIError("409", response=None, explanation=message)
        return SimpleNamespace(attach_socket=attach_socket)

    obj = SimpleNamespace(name="labctl-x-reader", id="c" * 64)
    oci = 'runc create failed: error mounting "mqueue" to rootfs: operation not permitted: OCI permission denied'
    with pytest.raises(ContainerStartError) as refused:
        DockerContainer(api(oci), obj, "reader")
    assert "operation not permitted" in refused.value.reason
    with pytest.raises(EngineError):  # anything else stays the engine's failure
        DockerContainer(api("connection reset"), obj, "reader")
