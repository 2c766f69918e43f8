"""What a scenario needs of the machine (labctl.scenario.requirements) and what ``labctl run`` does
with it, without an engine: a folder run skips what this machine lacks (emulation for a
foreign platform, an engine, an opt-in, a C compiler) with the reason and the fix, runs the
rest and exits 0; the same file named on the command line is refused before anything is
built or started (exit 3, or 2 for an opt-in); the text summary counts skips by reason.
binfmt_misc is a fake directory (``LABCTL_BINFMT_DIR``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import passing_run_all

from labctl import cli, runner
from labctl.runtime import clean as cleanup
from labctl.scenario import requirements
from labctl.errors import EXIT_ENVIRONMENT, EXIT_USAGE
from labctl.scenario.requirements import Machine, Need, Requirement, Unmet
from labctl.report.results import RunResult, ScenarioResult
from labctl.scenario import load_text

ENTRY = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n"

NATIVE = """\
version: 1
name: {name}
description: a native pair
containers:
  w: {{workload: sysv-writer, ipc: shareable}}
checks:
  - exit: {{container: w, code: 0}}
"""
ARM64 = """\
version: 1
name: on-arm64
description: an arm64 writer
containers:
  w: {workload: sysv-writer, ipc: shareable, platform: linux/arm64}
checks:
  - exit: {container: w, code: 0}
"""
HOST = """\
version: 1
name: host-ipc
description: needs an opt-in
containers:
  w: {workload: sysv-writer, ipc: host}
checks:
  - exit: {container: w, code: 0}
"""
PODMAN = """\
version: 1
name: podman-only
description: an engine feature
engines: [podman]
containers:
  w: {workload: sysv-writer, ipc: shareable}
checks:
  - exit: {container: w, code: 0}
"""


def binfmt(tmp_path: Path, entries: dict[str, str]) -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir(exist_ok=True)
    (d / "register").write_text("")
    for name, text in entries.items():
        (d / name).write_text(text)
    return d


def machine(tmp_path: Path, **kw) -> Machine:
    base = dict(engine="docker", arch="x86_64", binfmt_dir=binfmt(tmp_path, {}))
    return Machine(**{**base, **kw})


# ==== the registry ====


def test_emulation_missing_is_unmet_with_reason_and_one_command(tmp_path: Path) -> None:
    s = load_text(ARM64, "a.yaml")
    (u,) = requirements.unmet(s, machine(tmp_path))
    assert u.reason == "needs linux/arm64 emulation" and u.exit_code == EXIT_ENVIRONMENT
    assert "binfmt_misc has no qemu-aarch64 entry" in u.detail
    assert u.fix.startswith("apt-get install -y qemu-user-static")
    assert u.message.startswith("needs linux/arm64 emulation (") and "; to enable: apt-get install" in u.message


def test_emulation_registered_or_native_is_met(tmp_path: Path) -> None:
    s = load_text(ARM64, "a.yaml")
    assert requirements.unmet(s, machine(tmp_path, binfmt_dir=binfmt(tmp_path, {"qemu-aarch64": ENTRY}))) == []
    assert requirements.unmet(s, machine(tmp_path, arch="aarch64")) == []
    # a remote engine's binfmt_misc cannot be read from here: its container start will say
    assert requirements.unmet(s, machine(tmp_path, local=False)) == []


def test_engine_opt_in_and_compiler_kinds(tmp_path: Path) -> None:
    (u,) = requirements.unmet(load_text(PODMAN, "p.yaml"), machine(tmp_path))
    assert (u.reason, u.fix) == ("only on podman", "labctl run --engine podman")
    assert requirements.unmet(load_text(PODMAN, "p.yaml"), machine(tmp_path, engine="podman")) == []
    (u,) = requirements.unmet(load_text(HOST, "h.yaml"), machine(tmp_path), engine=False)
    assert (u.reason, u.exit_code) == ("needs --allow-host-ipc", EXIT_USAGE)
    assert requirements.unmet(load_text(HOST, "h.yaml"), machine(tmp_path, allowed=frozenset({"allow-host-ipc"})),
                              engine=False) == []
    # the labctl image (no compiler) cannot build the workload for another platform
    found = requirements.unmet(load_text(ARM64, "a.yaml"), machine(tmp_path, compiler=False, local=False))
    assert [u.reason for u in found] == ["needs a C compiler"]


def test_a_new_kind_is_one_registry_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """How a kind plugs in (the registry's own ``runtime`` kind is one such entry): needs +
    probe, nothing else."""
    monkeypatch.setattr(requirements, "REGISTRY", dict(requirements.REGISTRY))
    requirements.register(Requirement(
        "example", lambda s, m: [Need("example", "runsc")] if "gvisor" in s.name else [],
        lambda n, m: None if n.value in m.runtimes else Unmet(n, f"needs the {n.value} runtime", "not installed",
                                                                "apt-get install -y runsc")))
    s = load_text(NATIVE.format(name="gvisor-pair"), "g.yaml")
    t = requirements.triage([s], machine(tmp_path), set())
    assert t.runnable == [] and t.skipped[0][1][0].reason == "needs the runsc runtime"
    assert requirements.triage([s], machine(tmp_path, runtimes=frozenset({"runsc"})), set()).runnable == [s]
    with pytest.raises(requirements.Refused) as info:
        requirements.triage([s], machine(tmp_path), {"g.yaml"})
    assert info.value.exit_code == EXIT_ENVIRONMENT and "To enable it: apt-get install -y runsc" in str(info.value)


def test_summary_counts_skips_by_reason() -> None:
    run = RunResult("r", [ScenarioResult("a", "a.yaml", "passed"),
                          ScenarioResult("b", "b.yaml", "skipped", reason="needs linux/arm64 emulation"),
                          ScenarioResult("c", "c.yaml", "skipped", reason="needs --allow-host-ipc"),
                          ScenarioResult("d", "d.yaml", "skipped", reason="needs linux/arm64 emulation")])
    assert run.skips_by_reason() == {"needs linux/arm64 emulation": 2, "needs --allow-host-ipc": 1}
    from labctl.report import formats as report

    assert "skipped: 2 needs linux/arm64 emulation, 1 needs --allow-host-ipc" in report.to_text(run)


# ==== labctl run with a fake engine ====


class ArchEngine:
    name = "docker"
    address = "unix:///var/run/docker.sock"

    def describe(self) -> str:
        return "docker 1.0"

    def close(self) -> None:
        pass

    def architecture(self) -> str:
        return "x86_64"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A folder with a native scenario, an arm64 one, a host-IPC one and a podman-only one;
    binfmt_misc without qemu; the engine and the builds are fakes that record calls."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "native.yaml").write_text(NATIVE.format(name="native"))
    (folder / "on-arm64.yaml").write_text(ARM64)
    (folder / "host-ipc.yaml").write_text(HOST)
    (folder / "podman-only.yaml").write_text(PODMAN)
    monkeypatch.setenv("LABCTL_BINFMT_DIR", str(binfmt(tmp_path, {})))
    calls: list[str] = []
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: ArchEngine())
    monkeypatch.setattr(cli.common, "ensure_image", lambda *_a, **_k: calls.append("build") or SimpleNamespace(image="img"))

    def platform_images(_e, names, _p, force=False):
        calls.append(f"build {sorted(names)}")
        return dict.fromkeys(names, "img")

    monkeypatch.setattr(cli.common, "ensure_platform_images", platform_images)
    monkeypatch.setattr(cleanup, "remove_stale", lambda engine: ([], []))

    monkeypatch.setattr(runner, "run_all", passing_run_all(calls))
    return SimpleNamespace(folder=folder, calls=calls)


def test_a_folder_run_skips_what_the_machine_lacks_and_exits_0(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    status = {s["name"]: s["status"] for s in doc["scenarios"]}
    assert status == {"native": "passed", "on-arm64": "skipped", "host-ipc": "skipped", "podman-only": "skipped"}
    assert doc["summary"]["skipped_by_reason"] == {"needs linux/arm64 emulation": 1, "needs --allow-host-ipc": 1,
                                                   "only on podman": 1}
    # no arm64 image built, nothing of the skipped ones started
    assert lab.calls[0] == "build" and lab.calls[-1] == "run native" and "linux/arm64" not in " ".join(lab.calls)
    assert "SKIP on-arm64: needs linux/arm64 emulation (linux/arm64 needs emulation on this x86_64 engine" in err
    assert "to enable: apt-get install -y qemu-user-static" in err
    assert "Traceback" not in err


def test_the_text_summary_counts_the_skips(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder)]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("skipped: ")]
    assert sorted(line[len("skipped: "):].split(", ")) == ["1 needs --allow-host-ipc", "1 needs linux/arm64 emulation",
                                                           "1 only on podman"]
    assert out.rstrip().splitlines()[-1].startswith("1 passed, 0 failed, 0 errors, 3 skipped")


def test_named_explicitly_it_is_refused_before_anything_starts(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder / "on-arm64.yaml"), str(lab.folder / "native.yaml")]) == 3
    err = capsys.readouterr().err
    assert "linux/arm64 needs emulation on this x86_64 engine, and it is not set up: binfmt_misc has no " \
           "qemu-aarch64 entry" in err and "(scenario on-arm64," in err
    assert "apt-get install -y qemu-user-static" in err
    assert lab.calls == []  # nothing built, nothing started


def test_named_engine_only_scenario_is_refused_on_another_engine(lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(lab.folder / "podman-only.yaml")]) == 3
    assert "runs only on podman, and this run is on docker" in capsys.readouterr().err
    assert lab.calls == []


def test_registered_emulation_runs_it(lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_BINFMT_DIR", str(binfmt(tmp_path, {"qemu-aarch64": ENTRY})))
    assert cli.main(["run", str(lab.folder), "-q"]) == 0
    assert "on-arm64" in " ".join(lab.calls)


GVISOR_EXEC = """\
version: 1
name: sandboxed
description: gVisor and an executable mapping
containers:
  w: {workload: posix-writer, runtime: runsc, args: [--name, /x, --exec]}
checks:
  - exit: {container: w, code: 0}
"""


def test_what_emulation_cannot_show_is_skipped_on_a_foreign_platform() -> None:
    s = load_text(GVISOR_EXEC, "g.yaml")
    native = Machine(engine="docker", arch="x86_64")
    assert requirements.unmet(s, native, engine=True) == []
    emulated = requirements.unmet(s, Machine(engine="docker", arch="x86_64", platform="linux/arm64"), engine=True)
    assert [(u.need.kind, u.need.value, u.reason) for u in emulated] == [
        ("native", "runsc", "needs the engine's own platform"), ("native", "exec-map", "needs the engine's own platform")]
    assert "binfmt_misc" in emulated[0].detail and "PROT_EXEC" in emulated[1].detail
    # on an arm64 engine, linux/arm64 is native: nothing to skip
    assert requirements.unmet(s, Machine(engine="docker", arch="aarch64", platform="linux/arm64"), engine=True) == []


SECURITY = """\
version: 1
name: confined
description: an SELinux label and a Podman user namespace
containers:
  w: {workload: sysv-writer, ipc: shareable, security_opt: [label=level:s0], userns: keep-id}
checks:
  - exit: {container: w, code: 0}
"""


def test_security_module_and_userns_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("labctl.scenario.security.lsm_enabled", lambda name: False)
    s = load_text(SECURITY, "c.yaml")
    found = requirements.unmet(s, Machine(engine="docker"), engine=True)
    assert [(u.need.kind, u.reason) for u in found] == [("lsm", "needs selinux enforced"), ("userns", "only on podman")]
    assert found[1].message == ("userns keep-id (containers.w) is not a per-container mode on docker (only on podman); "
                                "fix: run it with --engine podman")
    # keep-id: a rootful Podman refuses it (the privilege kind), a rootless one runs it
    assert [u.need.kind for u in requirements.unmet(s, Machine(engine="podman"), engine=True)] == ["lsm", "privilege"]
    rootless = Machine(engine="podman", rootless=True)
    assert [u.need.kind for u in requirements.unmet(s, rootless, engine=True)] == ["lsm"]
    monkeypatch.setattr("labctl.scenario.security.lsm_enabled", lambda name: True)
    assert requirements.unmet(s, rootless, engine=True) == []
    assert requirements.unmet(s, Machine(), engine=False) == []  # validate never judges them
