"""The command line without an engine: parsing, LABCTL_ variables, exit codes, and the
interrupt path of ``run``, with a fake where the engine and the runner would be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from labctl import cli, runner
from labctl.images import library
from labctl.errors import EngineError, Interrupted, UsageError
from labctl.report.results import RunResult, ScenarioResult

ROOT = Path(__file__).resolve().parents[2]
PASSES = str(ROOT / "tests" / "data" / "failing" / "passes.yaml")
ENV_FLAGS = ("JOBS", "FORMAT", "TAG", "K", "KEEP", "REPORT", "QUIET", "ALLOW_HOST_IPC", "ALLOW_HOST_PATHS",
             "ALLOW_PRIVILEGED", "ITERATIONS", "STALE", "RUN", "FORCE", "ENGINE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_FLAGS:
        monkeypatch.delenv(f"LABCTL_{name}", raising=False)


# ==== a fake engine and runner ====


@dataclass
class FakeEngine:
    """The engine calls ``cli``/``cleanup`` make, recorded."""

    removed_runs: list[dict] = field(default_factory=list)
    stale: dict[str, dict[str, str]] = field(default_factory=dict)
    name: str = "docker"

    def describe(self) -> str:
        return f"{self.name} 1.0"

    def close(self) -> None:
        pass

    def run_ids(self) -> dict[str, dict[str, str]]:
        return self.stale

    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        self.removed_runs.append(dict(labels))
        return [f"container for {labels}"], []


@dataclass(frozen=True)
class FakeImage:
    image: str = "labctl/shmlab:test"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: fake)
    monkeypatch.setattr(cli.common, "ensure_image", lambda engine, progress, force=False: FakeImage())
    return fake


def fake_run_all(status: str = "passed", raise_: BaseException | None = None, calls: list | None = None):
    def run_all(engine, scenarios, image, *, run_id, jobs=1, keep=False, cancel=None, progress=None, on_result=None,
                images=None, platform=None):
        if calls is not None:
            calls.append({"run_id": run_id, "jobs": jobs, "keep": keep, "names": [s.name for s in scenarios]})
        if raise_ is not None:
            raise raise_
        res = RunResult(run_id)
        res.scenarios = [ScenarioResult(s.name, s.file, status, tags=s.tags) for s in scenarios]
        return res
    return run_all


# ==== parsing ====


def parse(argv: list[str]) -> SimpleNamespace:
    """The parameters click gives COMMAND for ``labctl COMMAND ARGS...`` (argv), without running it."""
    root = click.Context(cli.labctl, info_name="labctl")
    return SimpleNamespace(**cli.labctl.commands[argv[0]].make_context(argv[0], argv[1:], parent=root).params)


def test_run_options_parse() -> None:
    args = parse(["run", "a", "b", "--jobs", "3", "--tag", "x", "--tag", "y", "-k", "z",
                                          "--keep", "--format", "json", "--report", "junit:o.xml",
                                          "--allow-host-ipc"])
    assert list(args.paths) == ["a", "b"] and args.jobs == 3 and list(args.tag) == ["x", "y"] and list(args.k) == ["z"]
    assert args.keep and args.format == "json" and list(args.report) == ["junit:o.xml"]
    assert args.allow_host_ipc and not args.allow_privileged and not args.allow_host_paths


def test_every_flag_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"JOBS": "4", "FORMAT": "junit", "TAG": "a, b", "K": "x", "KEEP": "yes",
                        "REPORT": "json:r.json", "ALLOW_PRIVILEGED": "1", "QUIET": "true"}.items():
        monkeypatch.setenv(f"LABCTL_{name}", value)
    args = parse(["run"])
    assert (args.jobs, args.format, list(args.tag), list(args.k), args.keep) == (4, "junit", ["a", "b"], ["x"], True)
    assert list(args.report) == ["json:r.json"] and args.allow_privileged and args.quiet
    # The command line wins over the environment.
    assert parse(["run", "--jobs", "2", "--format", "text"]).jobs == 2


def test_false_values_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "false", "No", "off", ""):
        monkeypatch.setenv("LABCTL_ALLOW_HOST_IPC", value)
        assert parse(["run"]).allow_host_ipc is False


@pytest.mark.parametrize("name, value, message", [
    ("JOBS", "x", "LABCTL_JOBS='x': expected an integer"),
    ("KEEP", "maybe", "LABCTL_KEEP='maybe': expected one of 1, true"),
    ("ALLOW_PRIVILEGED", "ja", "LABCTL_ALLOW_PRIVILEGED='ja': expected one of"),
    ("FORMAT", "xml", "LABCTL_FORMAT='xml': expected one of text, json, junit"),
])
def test_malformed_environment_is_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                         name: str, value: str, message: str) -> None:
    monkeypatch.setenv(f"LABCTL_{name}", value)
    assert cli.main(["run", PASSES]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_variable_of_another_command_does_not_matter(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("LABCTL_ITERATIONS", "many")  # a bench option
    monkeypatch.setenv("LABCTL_FORMAT", "junit")  # valid for run, not for list: list keeps text
    assert cli.main(["list", PASSES]) == 0
    assert "minimal-pass" in capsys.readouterr().out
    assert cli.main(["bench"]) == 2
    assert "LABCTL_ITERATIONS='many'" in capsys.readouterr().err


def test_malformed_float_variable_is_exit_2_only_for_its_command(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("LABCTL_TIMEOUT", "30s")  # bench --timeout takes seconds as a number
    assert cli.main(["validate", PASSES]) == 0
    assert cli.main(["bench"]) == 2
    assert "LABCTL_TIMEOUT='30s': expected a number" in capsys.readouterr().err


def test_malformed_environment_at_the_real_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", PASSES], capture_output=True, text=True,
                          env={**os.environ, "LABCTL_JOBS": "x", "DOCKER_HOST": "unix:///nonexistent.sock"},
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "LABCTL_JOBS='x'" in proc.stderr


@pytest.mark.parametrize("argv", [["run", "--jobs", "x"], ["frobnicate"], ["run", "--format", "xml"], []])
def test_bad_command_lines_are_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Error:" in err and "Traceback" not in err


@pytest.mark.parametrize("spec, message", [
    ("junit", "expected FORMAT:PATH"),
    ("junit:", "expected FORMAT:PATH"),
    ("xml:out.xml", "unknown format 'xml'"),
    ("junit:/proc/nope/r.xml", "cannot write there"),  # found before the run, not after it
])
def test_report_spec_errors_are_exit_2_before_the_engine(engine: FakeEngine, capsys: pytest.CaptureFixture,
                                                         spec: str, message: str) -> None:
    assert cli.main(["run", PASSES, "--report", spec]) == 2
    assert message in capsys.readouterr().err
    assert not engine.removed_runs


def test_jobs_below_one_is_exit_2(engine: FakeEngine, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", PASSES, "--jobs", "0"]) == 2
    assert "'--jobs'" in capsys.readouterr().err  # click: "0 is not in the range x>=1"


def test_no_matching_scenario_is_exit_2(engine: FakeEngine, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", PASSES, "-k", "nothing-matches"]) == 2
    assert "no scenario matches" in capsys.readouterr().err


def test_missing_path_is_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["validate", "/nonexistent/scenarios"]) == 2
    err = capsys.readouterr().err
    assert "no such file or directory: /nonexistent/scenarios" in err and "`labctl list`" in err
    assert cli.main(["validate", "no-such-scenario"]) == 2  # not a library name either
    assert "no such file or directory: no-such-scenario" in capsys.readouterr().err


def test_a_library_scenario_is_named_as_labctl_list_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    """``labctl run sysv-shareable``: a name that is no path is the library's file of that
    name; a file or folder of that name, when there is one, is what it means."""
    from labctl.scenario import discover

    monkeypatch.chdir(tmp_path)
    assert discover(["sysv-shareable"]) == [str(library.library_dir() / "sysv-shareable.yaml")]
    assert cli.main(["validate", "sysv-shareable"]) == 0 and "sysv-shareable" in capsys.readouterr().out
    (tmp_path / "scenarios").mkdir()  # a ./scenarios, as labctl list reads it then
    with pytest.raises(UsageError):  # names are then looked up there, as labctl list shows them
        discover(["sysv-shareable"])
    (tmp_path / "scenarios" / "mine.yaml").write_text("")
    assert discover(["mine"]) == [os.path.join("scenarios", "mine.yaml")]
    (tmp_path / "mine").mkdir()
    assert discover(["mine"]) == []  # a folder of that name (empty) wins


def test_clean_run_and_stale_are_exclusive(engine: FakeEngine, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["clean", "--run", "abc", "--stale"]) == 2
    assert cli.main(["clean", "--run", "abc"]) == 0
    assert engine.removed_runs == [{"io.labctl.run-id": "abc"}]


def test_clean_usage_error_is_exit_2_even_without_an_engine(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    def no_engine(engine=None) -> None:
        raise EngineError("cannot reach the Docker engine at unix:///nowhere")

    monkeypatch.setattr(cli.common, "connect", no_engine)
    assert cli.main(["clean", "--run", "abc", "--stale"]) == 2
    assert "cannot be used together" in capsys.readouterr().err


# ==== run with the fake engine ====


def test_run_exit_codes_follow_the_results(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    calls: list = []
    monkeypatch.setattr(runner, "run_all", fake_run_all("passed", calls=calls))
    assert cli.main(["run", PASSES, "--jobs", "2", "--keep"]) == 0
    assert calls[0]["jobs"] == 2 and calls[0]["keep"] and calls[0]["names"] == ["minimal-pass"]
    monkeypatch.setattr(runner, "run_all", fake_run_all("failed"))
    assert cli.main(["run", PASSES]) == 1


def test_engine_unreachable_is_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def refuse(engine=None):
        raise EngineError("cannot reach the Docker engine at unix:///x.sock: refused")

    monkeypatch.setattr(cli.common, "connect", refuse)
    assert cli.main(["run", PASSES]) == 3
    assert "unix:///x.sock" in capsys.readouterr().err


def test_stale_runs_are_removed_before_a_run(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.stale = {"dead-run": {"io.labctl.pid": "999999999", "io.labctl.host": os.uname().nodename},
                    "kept-run": {"io.labctl.pid": "999999999", "io.labctl.host": os.uname().nodename,
                                 "io.labctl.keep": "true"},
                    "live-run": {"io.labctl.pid": str(os.getpid()), "io.labctl.host": os.uname().nodename}}
    monkeypatch.setattr(runner, "run_all", fake_run_all("passed"))
    assert cli.main(["run", PASSES]) == 0
    assert engine.removed_runs == [{"io.labctl.run-id": "dead-run"}]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_run_cleans_up_and_exits_128_plus_signal(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, sig: int) -> None:
    calls: list = []

    def run_all(engine_, scenarios, image, *, run_id, cancel, **_kw):
        calls.append(run_id)
        os.kill(os.getpid(), sig)  # delivered to this (main) thread: the handler raises here
        raise AssertionError("the handler should have raised")

    monkeypatch.setattr(runner, "run_all", run_all)
    monkeypatch.setattr(cli, "_exit_if_threads_linger", lambda code: None)
    before = signal.getsignal(sig)
    assert cli.main(["run", PASSES]) == 128 + sig
    assert engine.removed_runs == [{"io.labctl.run-id": calls[0]}]
    err = capsys.readouterr().err
    assert "interrupted: removing this run's containers" in err and "Traceback" not in err
    assert signal.getsignal(sig) is before  # handlers restored


def test_a_signal_swallowed_inside_the_run_still_means_interrupted(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    # A check may catch the Interrupted the handler raised and let run_all return
    # normally: the exit code must still say the run was interrupted.
    def run_all(engine_, scenarios, image, *, run_id, cancel, **_kw):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Interrupted:
            pass
        assert cancel.is_set()
        return RunResult(run_id)

    monkeypatch.setattr(runner, "run_all", run_all)
    monkeypatch.setattr(cli, "_exit_if_threads_linger", lambda code: None)
    assert cli.main(["run", PASSES]) == 143
    assert len(engine.removed_runs) == 1


def test_interrupted_exit_codes() -> None:
    assert Interrupted(signal.SIGINT).exit_code == 130
    assert Interrupted(signal.SIGTERM).exit_code == 143


def test_lingering_worker_threads_get_a_bounded_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(cli, "LINGER_S", 0.05)
    monkeypatch.setattr(cli.os, "_exit", exits.append)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=False)
    t.start()
    try:
        cli._exit_if_threads_linger(143)
    finally:
        stop.set()
        t.join()
    assert exits == [143]
    cli._exit_if_threads_linger(130)  # nothing lingers now: no hard exit
    assert exits == [143]


# ==== the click declarations ====


def test_every_option_of_every_command_reads_its_labctl_variable() -> None:
    # A new option declared with plain click.option (no LABCTL_<FLAG>) fails here.
    commands = [cli.labctl, *cli.labctl.commands.values()]
    for cmd in commands:
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.name in ("help", "version"):
                continue
            longs = [o for o in p.opts if o.startswith("--")]
            expected = cli.params.env_name(longs[0] if longs else p.name)
            assert isinstance(p, cli.params.EnvOption) and p.envvar == expected, (cmd.name, p.name)
            assert expected in cmd.get_help(click.Context(cmd, info_name=cmd.name)), (cmd.name, p.name)


def test_every_command_help_has_an_example(capsys: pytest.CaptureFixture) -> None:
    for name in cli.labctl.commands:
        assert cli.main([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Example" in out and f"labctl {name}" in out, name


def test_a_command_line_error_names_the_flag_not_the_variable(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "'--jobs'" in err and "LABCTL_JOBS" not in err


def test_quiet_before_or_after_the_command(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(runner, "run_all", fake_run_all("passed"))
    assert cli.main(["run", PASSES]) == 0
    assert "running 1 scenario" in capsys.readouterr().err
    for argv in (["-q", "run", PASSES], ["run", "-q", PASSES]):
        assert cli.main(argv) == 0
        captured = capsys.readouterr()
        assert captured.err == "" and "minimal-pass" in captured.out  # data still on stdout


def test_a_format_of_another_command_in_the_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_FORMAT", "markdown")  # list's handout format: run keeps text
    assert parse(["run"]).format == "text"
    assert parse(["list"]).format == "markdown"


# ==== defaults outside a checkout, init ====


def test_list_without_paths_says_which_library_it_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)  # no ./scenarios here: the built-in library
    assert cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "sysv-shareable" in out and "built-in library" in err
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "mine.yaml").write_text(Path(PASSES).read_text())
    assert cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "sysv-shareable" not in out and "./scenarios" in err


def test_init_writes_scenarios_and_schema_then_refuses_to_overwrite(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["init", str(tmp_path / "lab"), "sysv-shareable"]) == 0
    assert sorted(p.name for p in (tmp_path / "lab").iterdir()) == ["scenario.schema.json", "sysv-shareable.yaml"]
    capsys.readouterr()
    assert cli.main(["validate", str(tmp_path / "lab")]) == 0
    assert cli.main(["init", str(tmp_path / "lab"), "sysv-shareable"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert cli.main(["init", str(tmp_path / "lab"), "no-such-scenario"]) == 2


def test_build_self_goes_to_the_self_image(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    from labctl.images import build
    from labctl.images import selfimage

    asked = []
    monkeypatch.setattr(selfimage, "ensure_self_image",
                        lambda eng, force=False, progress=None: asked.append(force) or build.BuildResult("labctl/labctl:x", True, 0.1, "x"))
    assert cli.main(["build", "--self", "--force"]) == 0
    assert asked == [True] and capsys.readouterr().out.strip() == "labctl/labctl:x"


# ==== engines ====


def test_engine_option_on_every_engine_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(parse(["run", "--engine", "docker", "--engine", "podman"]).engines) == ["docker", "podman"]
    for cmd in ("build", "clean", "bench"):
        assert parse([cmd, "--engine", "podman"]).engine == "podman"
    monkeypatch.setenv("LABCTL_ENGINE", "docker,podman")
    assert list(parse(["run"]).engines) == ["docker", "podman"]
    monkeypatch.setenv("LABCTL_ENGINE", "podman")
    assert parse(["clean"]).engine == "podman"


@pytest.mark.parametrize("argv", [["run", "--engine", "rkt"], ["clean", "--engine", "lxc"]])
def test_unknown_engine_is_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == 2
    assert "--engine" in capsys.readouterr().err


def test_run_on_two_engines_side_by_side(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    engines = {"docker": FakeEngine(name="docker"), "podman": FakeEngine(name="podman")}
    asked: list = []
    monkeypatch.setattr(cli.common, "connect", lambda engine=None: asked.append(engine) or engines[engine])
    monkeypatch.setattr(cli.common, "ensure_image", lambda engine, progress, force=False: FakeImage())
    seen: list = []

    def run_all(engine, scenarios, image, **kw):
        seen.append(engine.name)
        res = RunResult(kw["run_id"])
        res.scenarios = [ScenarioResult(s.name, s.file, "failed" if engine.name == "podman" else "passed")
                         for s in scenarios]
        return res

    monkeypatch.setattr(runner, "run_all", run_all)
    assert cli.main(["run", PASSES, "--engine", "docker", "--engine", "podman"]) == 1  # failed on one of them
    out = capsys.readouterr().out
    assert asked == ["docker", "podman"] and seen == ["docker", "podman"]
    assert "side by side:" in out and "minimal-pass  PASS     FAIL  <- differs" in out
    assert "on docker 1.0, podman 1.0" in out
    assert cli.main(["run", PASSES, "--engine", "docker", "--engine", "podman", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["engines"] == [{"name": "docker", "version": "1.0"}, {"name": "podman", "version": "1.0"}]
    assert [s["engine"] for s in doc["scenarios"]] == ["docker", "podman"]
    assert doc["by_engine"] == {"minimal-pass": {"docker": "passed", "podman": "failed"}}
