"""Platforms through the scenario model, the start plan and ``labctl run``, without an
engine: ``platform:`` validation, which image and platform each container gets, the
init for emulated containers, and the run refused (exit 3, nothing built or started)
when binfmt_misc lacks the emulation a platform needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from types import SimpleNamespace

from labctl import cli, runner

from labctl.runtime import clean
from labctl.errors import LabctlError, ScenarioErrors
from labctl.runner.context import RunContext
from labctl.runner.plan import Platforms, StartPlan
from labctl.runner.storage import Volumes
from labctl.scenario import load_text
from labctl.scenario.schema import json_schema

SCENARIO = """\
version: 1
name: plat
description: platforms in one scenario
containers:
  writer:
    workload: sysv-writer
    ipc: shareable
    platform: linux/arm64/v8
  reader:
    workload: sysv-reader
    ipc: container:writer
    platform: linux/386
  plain:
    workload: hold
  own:
    image: example/own:1
checks:
  - exit: {container: reader, code: 0}
"""

ENTRY = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n"


class ArchEngine:
    name = "docker"

    def __init__(self, arch: str = "x86_64") -> None:
        self.arch = arch
        self.address = "unix:///var/run/docker.sock"

    def describe(self) -> str:
        return "docker 1.0"

    def close(self) -> None:
        pass

    def architecture(self) -> str:
        return self.arch


def plan_for(platform: str | None = None, arch: str = "x86_64") -> tuple[StartPlan, object]:
    scenario = load_text(SCENARIO)
    ctx = RunContext(engine=ArchEngine(arch), scenario=scenario, run_id="0123456789abcdef",  # type: ignore[arg-type]
                     image="native")
    platforms = Platforms("native", ArchEngine(arch).architecture, {"linux/arm64": "img-arm64", "linux/386": "img-386",
                                                                    "linux/arm/v7": "img-armv7"}, platform)
    return StartPlan(ctx, Volumes(), platforms), scenario


def test_platform_key_is_canonical_and_in_the_schema() -> None:
    scenario = load_text(SCENARIO)
    assert scenario.container("writer").platform == "linux/arm64"  # the alias, normalised
    assert scenario.container("plain").platform is None
    prop = json_schema()["$defs"] if "$defs" in json_schema() else json_schema()
    assert "linux/arm/v7" in json.dumps(prop)


def test_unknown_platform_is_located() -> None:
    with pytest.raises(ScenarioErrors) as info:
        load_text(SCENARIO.replace("linux/386", "linux/mips"), "x.yaml")
    assert info.value.exit_code == 2
    assert str(info.value).startswith("x.yaml:12:15: containers.reader.platform: unsupported platform 'linux/mips'")


def test_each_container_gets_its_platform_image_and_emulated_ones_an_init() -> None:
    plan, scenario = plan_for()
    specs = {c.name: plan.run_spec(c) for c in scenario.containers}
    assert (specs["writer"].image, specs["writer"].platform, specs["writer"].init) == ("img-arm64", "linux/arm64", True)
    assert (specs["reader"].image, specs["reader"].platform, specs["reader"].init) == ("img-386", "linux/386", False)
    assert (specs["plain"].image, specs["plain"].platform, specs["plain"].init) == ("native", None, False)
    assert (specs["own"].image, specs["own"].platform) == ("example/own:1", None)


def test_run_platform_moves_the_workloads_but_not_a_users_image() -> None:
    plan, scenario = plan_for("linux/arm/v7")
    specs = {c.name: plan.run_spec(c) for c in scenario.containers}
    assert (specs["plain"].image, specs["plain"].platform, specs["plain"].init) == ("img-armv7", "linux/arm/v7", True)
    assert specs["writer"].platform == "linux/arm64"  # a container's own platform wins
    assert (specs["own"].image, specs["own"].platform) == ("example/own:1", None)


def test_native_on_arm64_needs_no_init() -> None:
    plan, scenario = plan_for(arch="aarch64")
    assert plan.run_spec(scenario.container("writer")).init is False


# ==== labctl run --platform ====


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine is a fake; building or running anything is recorded (it must not happen)."""
    calls: list[str] = []
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: ArchEngine())
    def build(*_a, **_k):
        calls.append("build")
        return SimpleNamespace(image="img")

    def run_all(*_a, **k):
        calls.append(f"run {k['platform']} {sorted(k['images'])}")
        raise LabctlError("stop here")

    monkeypatch.setattr(cli.common, "ensure_image", build)
    monkeypatch.setattr(cli.common, "ensure_platform_images", lambda _e, names, _p: build() and dict.fromkeys(names))
    monkeypatch.setattr(runner, "run_all", run_all)
    monkeypatch.setattr(clean, "remove_stale", lambda engine: ([], []))
    return calls


def test_missing_emulation_exits_3_before_anything_starts(tmp_path: Path, no_run: list[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "register").write_text("")
    monkeypatch.setenv("LABCTL_BINFMT_DIR", str(binfmt))
    path = tmp_path / "plat.yaml"
    path.write_text(SCENARIO)
    assert cli.main(["run", str(path)]) == 3
    err = capsys.readouterr().err
    assert "labctl: linux/arm64 needs emulation on this x86_64 engine, and it is not set up: binfmt_misc has no " \
           "qemu-aarch64 entry" in err
    assert "apt-get install -y qemu-user-static" in err and "Traceback" not in err
    assert no_run == []  # nothing built, nothing started


def test_registered_emulation_lets_the_run_go_on(tmp_path: Path, no_run: list[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "register").write_text("")
    (binfmt / "qemu-aarch64").write_text(ENTRY)
    (binfmt / "qemu-arm").write_text(ENTRY)
    monkeypatch.setenv("LABCTL_BINFMT_DIR", str(binfmt))
    path = tmp_path / "plat.yaml"
    path.write_text(SCENARIO)
    assert cli.main(["run", str(path), "--platform", "linux/arm/v7"]) == 1  # the fake run_all's error
    err = capsys.readouterr().err
    assert "linux/arm64 runs under emulation" in err and "linux/arm/v7 runs under emulation" in err
    assert no_run == ["build", "build", "run linux/arm/v7 ['linux/386', 'linux/arm/v7', 'linux/arm64']"]


def test_bad_run_platform_is_a_usage_error(no_run: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--platform", "linux/sparc"]) == 2
    assert "unsupported platform 'linux/sparc'" in capsys.readouterr().err
    assert no_run == []
