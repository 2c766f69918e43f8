"""The security keys (security_opt, shm_options) and the runtime key: validation with
positions, the engine mapping (RunSpec), the compose and Kubernetes exports (validated
against the Kubernetes schema), and the skip where the host enforces no SELinux/AppArmor."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from labctl import cli
from labctl.export.compose import render_compose
from labctl.export.k8s.render import manifests
from labctl.scenario.security import devshm_tmpfs, security_opt
from labctl.scenario import load_file
from labctl.scenario.security import needs_lsm, seccomp_profile

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"

BASE = """\
version: 1
name: sec
description: security keys
containers:
  writer:
    workload: sysv-writer
    ipc: shareable
{extra}
checks:
  - exit: {{container: writer, code: 0}}
"""


def write(tmp_path: Path, extra: str, profile: str | None = '{"defaultAction": "SCMP_ACT_ALLOW"}') -> Path:
    if profile is not None:
        (tmp_path / "p.json").write_text(profile)
    f = tmp_path / "sec.yaml"
    f.write_text(BASE.format(extra=extra))
    return f


def errors_of(f: Path, capsys: pytest.CaptureFixture) -> str:
    assert cli.main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_security_opt_is_read_and_the_profile_made_absolute(tmp_path: Path) -> None:
    f = write(tmp_path, "    security_opt: [seccomp=p.json, no-new-privileges, label=level:s0:c1]")
    c = load_file(str(f)).containers[0]
    assert seccomp_profile(c.security_opt) == str(tmp_path / "p.json")
    assert security_opt(c) == ["no-new-privileges:true", "label=level:s0:c1"]
    assert needs_lsm(c.security_opt) == {"selinux"}


@pytest.mark.parametrize("extra, profile, where, message", [
    ("    security_opt: [seccomp=nope.json]", None, "8:20", "seccomp profile nope.json: No such file or directory"),
    ("    security_opt: [seccomp=p.json]", "[1, 2]", "8:20", "not a seccomp profile"),
    ("    security_opt: [seccomp=p.json]", "{", "8:20", "not JSON"),
    ("    security_opt: [selinux=on]", None, "8:20", "expected seccomp=FILE|unconfined, label="),
    ("    shm_options: [exec, suid]", None, "8:25", "expected exec, noexec, mode=OCTAL, uid=N or gid=N"),
    ("    shm_options: [mode=999]", None, "8:19", "expected exec, noexec"),
])
def test_bad_security_values_are_located(tmp_path: Path, capsys: pytest.CaptureFixture, extra: str,
                                         profile: str | None, where: str, message: str) -> None:
    err = errors_of(write(tmp_path, extra, profile), capsys)
    assert f"sec.yaml:{where}: containers.writer." in err and message in err, err


def test_shm_options_are_refused_where_dev_shm_is_another_containers(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "j.yaml"
    f.write_text(BASE.format(extra="  reader:\n    workload: hold\n    ipc: container:writer\n"
                                   "    shm_options: [exec]").replace("name: sec", "name: j"))
    err = errors_of(f, capsys)
    assert "containers.reader.shm_options: shm_options mount a /dev/shm of this container's own" in err


def test_shm_options_become_a_dev_shm_tmpfs(tmp_path: Path) -> None:
    c = load_file(str(write(tmp_path, "    shm_options: [exec, mode=1770, gid=1000]\n    shm_size: 8m"))).containers[0]
    assert devshm_tmpfs(c) == {"/dev/shm": "rw,nosuid,nodev,exec,mode=1770,gid=1000,size=8388608"}
    plain = load_file(str(write(tmp_path, "    shm_options: [uid=5]"))).containers[0]
    assert devshm_tmpfs(plain)["/dev/shm"] == "rw,nosuid,nodev,mode=1777,noexec,uid=5,size=67108864"


def test_the_library_scenarios_export_to_compose_with_their_keys() -> None:
    deny = yaml.safe_load(render_compose(load_file(str(ROOT / "scenarios" / "seccomp-denies-shmget.yaml"))))
    assert deny["services"]["writer"]["security_opt"] == [
        "no-new-privileges:true", f"seccomp={ROOT / 'scenarios' / 'seccomp' / 'deny-shmget.json'}"]
    gv = yaml.safe_load(render_compose(load_file(str(ROOT / "scenarios" / "gvisor-sysv-not-shared.yaml"))))
    assert {s["runtime"] for s in gv["services"].values() if "runtime" in s} == {"runsc"}
    ex = yaml.safe_load(render_compose(load_file(str(ROOT / "scenarios" / "devshm-exec-map.yaml"))))
    assert any(t.startswith("/dev/shm:") and ",exec," in t for t in ex["services"]["writer"]["tmpfs"])


def _pods(path: Path) -> list[dict]:
    return [d for d in manifests(load_file(str(path))) if d["kind"] == "Pod"]


def test_k8s_export_maps_runtime_seccomp_selinux_apparmor_and_dev_shm(tmp_path: Path) -> None:
    f = write(tmp_path, "    runtime: runsc\n    shm_options: [exec, gid=1000]\n"
                        "    security_opt: [seccomp=p.json, label=level:s0:c1, apparmor=shm-lab]")
    (pod,) = _pods(f)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "gvisor" and spec["securityContext"]["fsGroup"] == 1000
    sc = spec["containers"][0]["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "p.json"}
    assert sc["seLinuxOptions"] == {"level": "s0:c1"}
    assert sc["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "shm-lab"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}} in spec["volumes"]


def test_a_label_scenario_skips_where_selinux_is_not_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    from tests.unit.test_runtimes import RuntimeEngine
    from labctl import runner
    from labctl.report.results import RunResult

    monkeypatch.setattr("labctl.scenario.security.lsm_enabled", lambda name: False)
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: RuntimeEngine())
    monkeypatch.setattr(cli.common, "prepare_images", lambda *a, **k: ("labctl/shmlab:test", {}))
    monkeypatch.setattr(runner, "run_all", lambda engine, scenarios, image, **kw: RunResult(kw["run_id"]))
    d = tmp_path / "lib"
    d.mkdir()
    write(d, "    security_opt: [label=level:s0:c1]")
    assert cli.main(["run", str(d), "--format", "json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert s["status"] == "skipped" and "needs selinux enforced by the host kernel" in s["message"]
    assert cli.main(["run", str(d / "sec.yaml")]) == 3


def test_userns_is_validated_mapped_and_exported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = write(tmp_path, "    userns: auto")
    c = load_file(str(f)).containers[0]
    assert c.userns == "auto"
    (pod,) = _pods(f)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert pod["spec"]["hostUsers"] is False
    assert yaml.safe_load(render_compose(load_file(str(f))))["services"]["writer"]["userns_mode"] == "auto"
    bad = write(tmp_path, "    userns: remap")
    assert "containers.writer.userns: unknown user namespace mode 'remap'" in errors_of(bad, capsys)


def test_userns_keep_id_is_podmans_and_skipped_on_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    from tests.unit.test_runtimes import RuntimeEngine
    from labctl import runner
    from labctl.report.results import RunResult

    monkeypatch.setattr(cli.common, "connect", lambda engine=None: RuntimeEngine())
    monkeypatch.setattr(cli.common, "prepare_images", lambda *a, **k: ("labctl/shmlab:test", {}))
    monkeypatch.setattr(runner, "run_all", lambda engine, scenarios, image, **kw: RunResult(kw["run_id"]))
    d = tmp_path / "lib"
    d.mkdir()
    write(d, "    userns: keep-id")
    assert cli.main(["run", str(d), "--format", "json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert s["status"] == "skipped" and "userns keep-id (containers.writer) is not a per-container mode on docker" \
        in s["message"]


def test_tmpfs_options_are_validated_and_mapped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from labctl.scenario.security import tmpfs_options

    f = write(tmp_path, '    tmpfs: ["/scratch:exec,uid=1000,gid=1000", /plain]')
    c = load_file(str(f)).containers[0]
    assert [(m.target, m.options) for m in c.mounts] == [("/scratch", ("exec", "uid=1000", "gid=1000")), ("/plain", ())]
    assert tmpfs_options(c.mounts[0].options) == "mode=1777,exec,uid=1000,gid=1000"
    assert tmpfs_options(("mode=0700",)) == "mode=0700"
    svc = yaml.safe_load(render_compose(load_file(str(f))))["services"]["writer"]
    assert "/scratch:exec,uid=1000,gid=1000" in svc["tmpfs"] and "/plain" in svc["tmpfs"]
    err = errors_of(write(tmp_path, '    tmpfs: ["/scratch:suid"]'), capsys)
    assert "sec.yaml:8:13: containers.writer.tmpfs[0]" in err and "gid=N, comma-separated" in err


@pytest.mark.parametrize("value, message", [
    ("777", "umask 777 is decimal; write it in octal with a leading 0 (0777)"),
    ('"0999"', "invalid umask '0999' (expected octal such as 0077)"),
    ("01000", "umask out of range"),
    ("[0]", "containers.writer.umask"),
])
def test_bad_umask_is_located(tmp_path: Path, capsys: pytest.CaptureFixture, value: str, message: str) -> None:
    err = errors_of(write(tmp_path, f"    umask: {value}"), capsys)
    assert "sec.yaml:8:12: containers.writer.umask" in err and message in err, err


def test_umask_is_read_and_refused_by_both_exports_at_its_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = write(tmp_path, "    umask: 0077")
    s = load_file(str(f))
    assert s.containers[0].umask == 0o077 and [(k, p) for k, p, _ in s.engine_only] == [("umask", "containers.writer.umask")]
    assert load_file(str(write(tmp_path, '    umask: "0000"'))).containers[0].umask == 0
    assert cli.main(["compose", str(f)]) == 2
    err = capsys.readouterr().err
    assert "sec.yaml:8:12: containers.writer.umask: Compose cannot express this: umask (the Compose spec has no umask" in err
    assert cli.main(["export", "k8s", str(f)]) == 2
    err = capsys.readouterr().err
    assert "sec.yaml:8:12: containers.writer.umask: Kubernetes cannot express this: umask" in err


def test_umask_in_a_docker_only_scenario_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(BASE.format(extra="    umask: 0000").replace("containers:", "engines: [docker]\ncontainers:"))
    err = errors_of(f, capsys)
    assert "d.yaml:9:12: containers.writer.umask: umask is carried out only by podman, and this scenario runs " \
           "only on docker (engines:): Docker has no per-container umask" in err


def test_umask_is_podmans_skipped_on_docker_refused_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    from tests.unit.test_runtimes import RuntimeEngine
    from labctl import runner
    from labctl.report.results import RunResult, ScenarioResult

    engine = RuntimeEngine()
    monkeypatch.setattr(cli.common, "connect", lambda engine_name=None: engine)
    monkeypatch.setattr(cli.common, "prepare_images", lambda *a, **k: ("labctl/shmlab:test", {}))
    ran: list[str] = []

    def run_all(eng, scenarios, image, **kw):  # noqa: ANN001, ANN202
        ran.extend(s.name for s in scenarios)
        res = RunResult(kw["run_id"])
        res.scenarios = [ScenarioResult(s.name, s.file, "passed", tags=s.tags) for s in scenarios]
        return res

    monkeypatch.setattr(runner, "run_all", run_all)
    d = tmp_path / "lib"
    d.mkdir()
    f = write(d, "    umask: 0000")
    assert cli.main(["run", str(d), "--format", "json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert s["status"] == "skipped" and ran == []
    assert f"{f}:8:12: containers.writer.umask: Docker has no per-container umask" in s["message"], s["message"]
    assert "labctl run --engine podman" in s["message"]
    assert cli.main(["run", str(f)]) == 3
    err = capsys.readouterr().err
    assert f"{f}:8:12: containers.writer.umask" in err and "--engine podman" in err
    engine.name = "podman"
    assert cli.main(["run", str(f), "--format", "json"]) == 0 and ran == ["sec"]


def test_umask_reaches_podman_through_libpod_create() -> None:
    from labctl.runtime.engine import RunSpec
    from labctl.runtime.podman_engine import libpod_spec

    spec = RunSpec(name="n", image="labctl/shmlab:t", labels={"io.labctl.managed": "true"}, command=["hold"],
                   ipc_mode="container:labctl-x-w", user="1000:1000", umask="0000", shm_size=8 << 20,
                   mounts=[("volume", "v", "/data", True), ("bind", "/tmp/d", "/b", False)],
                   tmpfs={"/scratch": "mode=1777,exec"}, restart_policy="on-failure:3", memswap_limit=1 << 28)
    body = libpod_spec(spec, ["no-new-privileges:true", "label=level:s0:c1"])
    assert body["umask"] == "0000" and body["ipcns"] == {"nsmode": "container", "value": "labctl-x-w"}
    assert body["netns"] == {"nsmode": "none"} and "pidns" not in body and body["cap_drop"] == ["ALL"]
    assert body["volumes"] == [{"Name": "v", "Dest": "/data", "Options": ["ro"]}]
    assert {"destination": "/b", "type": "bind", "source": "/tmp/d", "options": ["rbind"]} in body["mounts"]
    assert {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777", "exec"]} \
        in body["mounts"]
    assert body["resource_limits"] == {"memory": {"limit": 256 << 20, "swap": 1 << 28}, "pids": {"limit": 64}}
    assert body["restart_policy"] == "on-failure" and body["restart_tries"] == 3
    assert body["no_new_privileges"] is True and body["selinux_opts"] == ["level:s0:c1"]
    assert body["read_only_filesystem"] is True and body["shm_size"] == 8 << 20 and body["user"] == "1000:1000"
