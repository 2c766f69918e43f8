"""OCI runtimes without an engine: the ``runtime:`` key and ``run --runtime``, the availability
judgement (reason and fix), the skip/refusal of a run, and the probe under a sandboxed runtime
(a fake gVisor container: the namespace check can never call two sandboxes "the same")."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labctl import cli, runner
from labctl.errors import LabctlError
from labctl.report.results import RunResult, ScenarioResult
from labctl.runner.probes import ProbeSet, probed_owners
from labctl.runtime import oci
from labctl.scenario import load_text
from labctl.scenario.kinds import namespace as ns_kind
from labctl.scenario.kinds.base import Look
import time

from labctl.scenario.schema import json_schema

TWO = """\
version: 1
name: {name}
description: two containers
containers:
  writer: {{workload: sysv-writer, ipc: shareable{wr}}}
  reader: {{workload: sysv-reader, ipc: "container:writer"{rd}}}
checks:
  - namespace: {{containers: [writer, reader], same: true}}
"""


def two(name: str = "pair", wr: str = "", rd: str = "") -> str:
    return TWO.format(name=name, wr=wr, rd=rd)


# ==== the key ====


def test_runtime_key_is_read_and_in_the_schema() -> None:
    s = load_text(two(wr=", runtime: runsc"), "x.yaml")
    assert [c.runtime for c in s.containers] == ["runsc", None]
    text = json.dumps(json_schema())
    assert '"enum": ["runc", "crun", "runsc"]' in text


def test_an_unknown_runtime_is_located(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(two(wr=", runtime: kata"))
    assert cli.main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:5:60: containers.writer.runtime: unknown runtime 'kata' (expected one of: runc, crun, runsc)" in err
    assert "Traceback" not in err


def test_run_runtime_option_is_a_choice(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", "--runtime", "kata", "x.yaml"]) == 2
    assert "kata" in capsys.readouterr().err


# ==== availability: reason and fix ====


def test_a_registered_runtime_is_available() -> None:
    a = oci.availability("runsc", "docker", {"runc": "runc", "runsc": "/usr/bin/runsc"}, which=lambda _: None)
    assert a.ok and a.message() == ""


def test_crun_missing_on_docker_names_the_reason_and_the_fix() -> None:
    a = oci.availability("crun", "docker", {"runc": "runc"}, which=lambda _: None)
    assert not a.ok
    assert "not installed" in a.reason and "no runtime named crun (registered: runc)" in a.reason
    assert "apt-get install -y crun" in a.fix and "hybrid" in a.fix and "daemon.json" in a.fix
    assert a.message().startswith("runtime crun is not available on docker: ")


def test_runsc_on_podman_needs_a_service_of_its_own() -> None:
    a = oci.availability("runsc", "podman", {"runc": "default"}, which=lambda n: "/usr/bin/runsc")
    assert not a.ok and "ignores a container's runtime" in a.reason
    assert "podman --runtime runsc --runtime-flag network=none system service" in a.fix
    assert "/run/podman/podman-runsc.sock" in a.fix and "not installed" not in a.fix


def test_only_runsc_is_sandboxed() -> None:
    assert oci.sandboxed("runsc") and not oci.sandboxed("runc") and not oci.sandboxed("crun")
    assert not oci.sandboxed(None)


# ==== the run: skipped in a folder, refused when named ====


@dataclass
class RuntimeEngine:
    name: str = "docker"
    runtimes: dict[str, str] = field(default_factory=lambda: {"runc": "runc"})

    def describe(self) -> str:
        return f"{self.name} 1.0"

    def close(self) -> None:
        pass

    def run_ids(self) -> dict:
        return {}

    def oci_runtimes(self) -> dict[str, str]:
        return dict(self.runtimes)


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    ran: list[list[str]] = []
    eng = RuntimeEngine()
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: eng)
    monkeypatch.setattr(cli.common, "prepare_images", lambda *a, **k: ("labctl/shmlab:test", {}))

    def run_all(engine, scenarios, image, **_kw):
        ran.append([f"{s.name}:{','.join(c.runtime or '-' for c in s.containers)}" for s in scenarios])
        res = RunResult(_kw["run_id"])
        res.scenarios = [ScenarioResult(s.name, s.file, "passed", tags=s.tags) for s in scenarios]
        return res

    monkeypatch.setattr(runner, "run_all", run_all)
    return ran


def test_a_folder_run_skips_a_scenario_whose_runtime_is_missing(tmp_path: Path, fake_run: list,
                                                                 capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.yaml").write_text(two("needs-crun", wr=", runtime: crun", rd=", runtime: crun"))
    (tmp_path / "b.yaml").write_text(two("plain"))
    assert cli.main(["run", str(tmp_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by = {s["name"]: s for s in out["scenarios"]}
    assert by["needs-crun"]["status"] == "skipped" and "runtime crun is not available" in by["needs-crun"]["message"]
    assert "fix:" in by["needs-crun"]["message"]
    assert fake_run == [["plain:-,-"]]


def test_a_named_scenario_whose_runtime_is_missing_is_refused_with_exit_3(tmp_path: Path, fake_run: list,
                                                                          capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(two("needs-crun", wr=", runtime: crun"))
    assert cli.main(["run", str(f)]) == 3
    assert "runtime crun is not available on docker" in capsys.readouterr().err
    assert fake_run == []


def test_run_runtime_fills_the_containers_that_name_none(tmp_path: Path, fake_run: list,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(two("mixed", rd=", runtime: runc"))
    runsc = tmp_path / "runsc"  # a binary the engine lists must exist on its host (this one)
    runsc.write_text("")
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: RuntimeEngine(runtimes={"runc": "runc",
                                                                                           "runsc": str(runsc)}))
    assert cli.main(["run", str(tmp_path), "--runtime", "runsc", "-q"]) == 0
    assert fake_run == [["mixed:runsc,runc"]]


# ==== observation under a sandbox (a fake gVisor runtime) ====


class FakeOutput:
    def __init__(self, ipcns: str) -> None:
        self.changed = threading.Condition()
        self.first = {"start": {"event": "start", "ipcns": ipcns}}
        self.run_first: dict = {}


@dataclass
class FakeContainer:
    name: str
    ipcns: str = "unknown"
    host_pid: int = 4242
    exited: bool = False
    execs: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.output = FakeOutput(self.ipcns)

    def poll_exit(self):
        return object() if self.exited else None

    def pid(self) -> int:
        return self.host_pid

    def exec(self, cmd: list[str], timeout: float = 30.0) -> tuple[int, str]:
        self.execs.append(cmd)
        return 0, json.dumps({"event": "probe", "segments": [], "seen_from": self.name}) + "\n"


class FakeRoster:
    def __init__(self, containers: dict[str, FakeContainer]) -> None:
        self.containers = containers
        self.refused: dict[str, str] = {}

    def get(self, role: str):
        return self.containers.get(role)


class FakeCtx:
    def __init__(self, scenario) -> None:
        self.scenario = scenario

    def name(self, role: str) -> str:
        return f"labctl-x-{role}"

    def remaining(self) -> float:
        return 60.0


class Obs:
    def __init__(self, probes: ProbeSet) -> None:
        self.probes = probes

    def ipc_namespace(self, c: str):
        return self.probes.ipc_namespace(c)


def probes_for(text: str, monkeypatch: pytest.MonkeyPatch, **containers: FakeContainer) -> ProbeSet:
    # From outside, both sandboxes' host-side processes sit in ONE IPC namespace (the engine
    # accepted ipc: container:), which is exactly what must not be reported.
    monkeypatch.setattr("labctl.runner.probes.process_ipc_namespace", lambda pid: "ipc:[4026531839]")
    roster = FakeRoster(containers)
    return ProbeSet(FakeCtx(load_text(text, "x.yaml")), started=roster.get,  # type: ignore[arg-type]
                    refusal=roster.refused.get)


def test_two_gvisor_sandboxes_are_never_reported_in_the_same_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    text = two(wr=", runtime: runsc", rd=", runtime: runsc")
    probes = probes_for(text, monkeypatch, writer=FakeContainer("labctl-x-writer"),
                        reader=FakeContainer("labctl-x-reader"))
    a, b = probes.ipc_namespace("writer"), probes.ipc_namespace("reader")
    assert a and b and a != b and a.startswith("gvisor-sandbox:")
    body = ns_kind.NamespaceCheck("writer", "reader", True)
    v = ns_kind.judge(body, Obs(probes), Look(0.0, time.monotonic))  # type: ignore[arg-type]
    assert not v.ok
    assert ns_kind.judge(ns_kind.NamespaceCheck("writer", "reader", False), Obs(probes),
                         Look(0.0, time.monotonic)).ok  # type: ignore[arg-type]


def test_under_runc_the_same_host_namespace_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # the control: "unknown" in the start event falls back to /proc, which then is the truth
    probes = probes_for(two(), monkeypatch, writer=FakeContainer("w"), reader=FakeContainer("r"))
    assert probes.ipc_namespace("writer") == probes.ipc_namespace("reader") == "ipc:[4026531839]"


def test_a_sandboxed_container_is_probed_from_inside_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    w, r = FakeContainer("labctl-x-writer"), FakeContainer("labctl-x-reader")
    probes = probes_for(two(wr=", runtime: runsc", rd=", runtime: runsc"), monkeypatch, writer=w, reader=r)
    assert probed_owners(probes.ctx.scenario) == set()  # no holder joins from outside
    seen = probes.probe_ipc("reader", ["probe", "--segments"])
    assert seen["seen_from"] == "labctl-x-reader" and r.execs == [["/shmlab", "probe", "--segments"]]
    assert w.execs == []  # not the donor's sandbox, whatever ipc: container: says
    assert probes.probe_file("writer", ["probe", "--stat", "/data/f"])["seen_from"] == "labctl-x-writer"


def test_a_stopped_sandbox_is_refused_not_probed_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = probes_for(two(wr=", runtime: runsc"), monkeypatch, writer=FakeContainer("w", exited=True),
                        reader=FakeContainer("r"))
    with pytest.raises(LabctlError, match="gVisor sandbox of writer .*not running"):
        probes.probe_ipc("writer", ["probe", "--segments"])


# ==== the runtime requirement of the registry: summary, steps, refusal ====


def test_runtime_skips_are_counted_by_reason_in_the_summary(tmp_path: Path, fake_run: list,
                                                            capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.yaml").write_text(two("needs-crun", wr=", runtime: crun"))
    (tmp_path / "b.yaml").write_text(two("needs-runsc", wr=", runtime: runsc", rd=", runtime: runsc"))
    (tmp_path / "c.yaml").write_text(two("plain"))
    assert cli.main(["run", str(tmp_path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["summary"]["skipped_by_reason"] == {"needs the crun runtime": 1, "needs the runsc runtime": 1}
    by = {s["name"]: s for s in doc["scenarios"]}
    runsc = by["needs-runsc"]["message"]
    assert runsc.startswith("runtime runsc is not available on docker: ") and runsc.count("runtime runsc") == 1
    assert '"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}' in runsc
    assert "/etc/docker/daemon.json" in runsc and "kill -HUP $(pidof dockerd)" in runsc
    assert "SKIP needs-runsc: runtime runsc is not available on docker" in captured.err
    assert fake_run == [["plain:-,-"]]
    assert cli.main(["run", str(tmp_path)]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("skipped: ")]
    assert sorted(line[len("skipped: "):].split(", ")) == ["1 needs the crun runtime", "1 needs the runsc runtime"]


def test_named_runsc_on_docker_is_refused_with_the_steps(tmp_path: Path, fake_run: list,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)  # runsc is not installed either
    f = tmp_path / "g.yaml"
    f.write_text(two("needs-runsc", wr=", runtime: runsc"))
    assert cli.main(["run", str(f)]) == 3
    err = capsys.readouterr().err
    assert f"runtime runsc is not available on docker: it is not installed, and the Docker engine has no runtime " \
           f"named runsc (registered: runc) (scenario needs-runsc, {f})" in err
    steps = err.split("Enable it (as root), then run again:\n", 1)[1].splitlines()
    assert steps[0] == "  apt-get install -y runsc  # gVisor"
    assert steps[1].startswith('  add "runtimes": {"runsc": {"path": "/usr/bin/runsc"') and "daemon.json" in steps[1]
    assert steps[2].startswith("  kill -HUP $(pidof dockerd)")
    assert fake_run == []  # nothing built, nothing started


def test_named_runsc_on_podman_gives_the_service_to_start(tmp_path: Path, fake_run: list,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: RuntimeEngine("podman"))
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")  # installed, no service
    f = tmp_path / "g.yaml"
    f.write_text(two("needs-runsc", wr=", runtime: runsc"))
    assert cli.main(["run", str(f), "--engine", "podman"]) == 3
    err = capsys.readouterr().err
    assert "runtime runsc is not available on podman: no Podman API service whose default runtime is runsc" in err
    assert "  podman --runtime runsc --runtime-flag network=none system service --time=0 " \
           "unix:///run/podman/podman-runsc.sock &" in err
    assert "apt-get install" not in err and fake_run == []


def test_a_registered_runtime_runs_and_an_unasked_engine_is_not_judged(tmp_path: Path) -> None:
    from labctl.scenario import requirements
    from labctl.scenario.requirements import Machine

    s = load_text(two("g", wr=", runtime: runsc"), "g.yaml")
    assert requirements.unmet(s, Machine(engine="docker", runtimes=frozenset({"runc", "runsc"}))) == []
    (u,) = requirements.unmet(s, Machine(engine="docker", runtimes=frozenset({"runc"})))
    assert (u.need.kind, u.need.path, u.reason) == ("runtime", "containers.writer.runtime", "needs the runsc runtime")
    # before connecting (validate, list) nothing says which runtimes the engine has
    assert requirements.unmet(s, Machine(engine="docker")) == []
    assert requirements.unmet(s, Machine(), engine=False) == []


def test_the_engine_is_asked_its_runtimes_only_when_a_scenario_names_one(tmp_path: Path, fake_run: list,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    class Counting(RuntimeEngine):
        def oci_runtimes(self) -> dict[str, str]:
            asked.append(self.name)
            return super().oci_runtimes()

    monkeypatch.setattr(cli.common, "connect", lambda engine=None: Counting())
    (tmp_path / "a.yaml").write_text(two("plain"))
    assert cli.main(["run", str(tmp_path), "-q"]) == 0 and asked == []
    assert cli.main(["run", str(tmp_path), "-q", "--runtime", "runc"]) == 0 and asked == ["docker"]


def test_cgroup_mode_reads_the_mount(tmp_path: Path) -> None:
    assert oci.cgroup_mode(tmp_path) == "legacy"
    (tmp_path / "unified").mkdir()
    assert oci.cgroup_mode(tmp_path) == "hybrid"
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert oci.cgroup_mode(tmp_path) == "unified"


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_crun_on_hybrid_cgroups_has_no_steps_and_the_fix_says_why(engine: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oci, "cgroup_mode", lambda root=oci.CGROUP_ROOT: "hybrid")
    a = oci.availability("crun", engine, {"runc": "runc"}, which=lambda _: None)
    assert a.steps == () and "on hybrid cgroups crun fails every container" in a.fix
    monkeypatch.setattr(oci, "cgroup_mode", lambda root=oci.CGROUP_ROOT: "unified")
    a = oci.availability("crun", engine, {"runc": "runc"}, which=lambda _: None)
    assert a.steps[0].startswith("apt-get install -y crun  #") and len(a.steps) == (3 if engine == "docker" else 2)


def test_named_crun_on_hybrid_cgroups_is_refused_with_the_reason_not_commands(
        tmp_path: Path, fake_run: list, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(oci, "cgroup_mode", lambda root=oci.CGROUP_ROOT: "hybrid")
    f = tmp_path / "c.yaml"
    f.write_text(two("needs-crun", wr=", runtime: crun"))
    assert cli.main(["run", str(f)]) == 3
    err = capsys.readouterr().err
    assert "runtime crun is not available on docker" in err and "Enable it (as root)" not in err
    assert "To enable it: " in err and "cgroups in hybrid mode not supported" in err and fake_run == []


class _ListingEngine:
    """An engine as ``cli.common.machine`` asks it: Docker listing runtimes at these paths."""

    def __init__(self, name: str, runtimes: dict[str, str]) -> None:
        self.name, self.address, self._runtimes = name, "unix:///var/run/docker.sock", runtimes

    def oci_runtimes(self) -> dict[str, str]:
        return dict(self._runtimes)

    def architecture(self) -> str:
        return "x86_64"


def test_a_runtime_docker_lists_whose_binary_is_gone_skips_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd keeps listing a runtime of daemon.json whose binary was removed (a SIGHUP
    does not drop it); its containers would fail at start ("stat /usr/bin/runsc"): the
    scenario skips with the path and the fix, where labctl sees the engine's host."""
    from labctl.cli.common import machine
    from labctl.runtime import hostpaths
    from labctl.scenario import requirements

    present = tmp_path / "runc"
    present.write_text("")
    gone = str(tmp_path / "runsc")
    listed = {"runc": str(present), "runsc": gone, "io.containerd.runc.v2": "runc"}
    monkeypatch.delenv(hostpaths.IN_CONTAINER_ENV, raising=False)
    m = machine({}, _ListingEngine("docker", listed), runtimes=True)
    assert m.runtimes == frozenset(listed) and m.runtimes_gone == (("runsc", gone),)
    s = load_text(two("g", wr=", runtime: runsc"), "g.yaml")
    (u,) = requirements.unmet(s, m)
    assert u.reason == "needs the runsc runtime" and gone in u.detail and "no such file" in u.detail
    assert "apt-get install -y runsc" in u.fix and "daemon.json" in u.fix
    assert requirements.unmet(load_text(two("h", wr=", runtime: runc"), "h.yaml"), m) == []
    # where labctl cannot see the engine's host (the labctl image), the listing is believed
    monkeypatch.setenv(hostpaths.IN_CONTAINER_ENV, "1")
    assert machine({}, _ListingEngine("docker", listed), runtimes=True).runtimes_gone == ()
    monkeypatch.delenv(hostpaths.IN_CONTAINER_ENV)
    # Podman's "paths" are its runtime services' sockets, judged by availability()
    assert machine({}, _ListingEngine("podman", listed), runtimes=True).runtimes_gone == ()
