"""The pytest plugin on the real engine: the library as pytest items (same outcome as
``labctl run``), a failing scenario's report in JUnit, the ``labctl`` fixture, and a
Ctrl-C that leaves nothing behind (the leak guard checks every test too)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import docker
import pytest

from labctl import scenario as scen
from labctl.cli.common import missing_opt_ins

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PASSES = REPO / "tests/data/failing/passes.yaml"
FAILS = REPO / "tests/data/failing/expects-sharing-across-private.yaml"


# The library as items, run: a pass, a pass judged per engine, a pass of a Docker-only
# scenario and an opt-in skip (a folder, as the library is given). The items' outcomes must
# be what `labctl run` gave the same scenarios in the session's Docker library run (the
# plugin runs them through the same code); the whole library is collected as items.
ITEMS = ("sysv-shareable", "default-ipc-mode", "donor-restart-rejoin", "sysv-host")


def test_the_library_as_pytest_items(pytester: pytest.Pytester, shmlab_image: str, docker_library_run,
                                     tmp_path: Path) -> None:
    import json
    import re

    library = scen.load_all([str(REPO / "scenarios")])
    res = pytester.runpytest_subprocess("--labctl", str(REPO / "scenarios"), "--collect-only", "-q",
                                        "-p", "no:cacheprovider", timeout=300)
    assert f"{len(library)} tests collected" in res.stdout.str(), res.stdout.str()[-2000:]

    statuses = {s["name"]: s["status"] for s in json.loads(docker_library_run.proc.stdout)["scenarios"]}
    by_name = {s.name: s for s in library}
    expected = {name: "skipped" if missing_opt_ins(by_name[name], {}) else statuses[name] for name in ITEMS}
    assert set(expected.values()) == {"passed", "skipped"}  # both outcomes, or the comparison proves little
    assert missing_opt_ins(by_name["sysv-host"], {})
    # a folder, as the library is given (a named file needing an opt-in is an error, not a skip)
    folder = tmp_path / "scenarios"
    shutil.copytree(REPO / "scenarios", folder, ignore=lambda d, names: [
        n for n in names if n.endswith(".yaml") and Path(d) == REPO / "scenarios" and n[:-5] not in ITEMS])
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(ITEMS)
    res = pytester.runpytest_subprocess("--labctl", str(folder), "--labctl-jobs", "3", "-v",
                                        "-p", "no:cacheprovider", timeout=900)
    got = dict(re.findall(r"::([\w-]+) (PASSED|SKIPPED|FAILED|ERROR)", res.stdout.str()))
    assert {n: o.lower() for n, o in got.items()} == expected, res.stdout.str()[-3000:]
    res.assert_outcomes(passed=list(expected.values()).count("passed"),
                        skipped=list(expected.values()).count("skipped"))


def test_failure_report_and_junit(pytester: pytest.Pytester, shmlab_image: str) -> None:
    res = pytester.runpytest_subprocess("--labctl", str(PASSES), str(FAILS), "--junitxml=out.xml",
                                        "-p", "no:cacheprovider", timeout=300)
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    assert "reader sees the writer" in out and "expected" in out and "observed" in out
    assert "Traceback" not in out
    xml = (pytester.path / "out.xml").read_text()
    assert xml.count("<testcase ") == 2 and 'name="expects-sharing-across-private"' in xml
    assert "reader sees the writer" in xml


def test_fixture_runs_files_and_dicts(labctl) -> None:  # noqa: ANN001 - the plugin's Lab
    ok = labctl.run(PASSES)
    assert ok.passed and ok.checks["writer writes three times"].status == "passed"
    counts = [e["count"] for e in ok.events("writer", "wrote")]
    assert len(counts) >= 3 and counts == sorted(counts)

    bad = labctl.scenario({
        "version": 1, "name": "fixture-negative", "description": "a reader in a private namespace",
        "containers": {
            "writer": {"workload": "sysv-writer", "args": ["--count", "0", "--interval", "100ms"],
                       "ipc": "shareable"},
            "reader": {"workload": "sysv-reader", "args": ["--reads", "1"], "after": {"writer": "attached"}},
        },
        "checks": [{"name": "reader exits 0", "exit": {"container": "reader", "code": 0}}],
    })
    assert bad.status == "failed"
    check = bad.checks["reader exits 0"]
    assert check.status == "failed" and check.observed and "0" in check.expected
    assert "reader" in bad.outputs and "reader exits 0" in bad.report()


def test_fixture_refuses_a_bad_dict_with_its_position(labctl) -> None:  # noqa: ANN001
    from labctl.errors import ScenarioErrors

    with pytest.raises(ScenarioErrors, match=r"inline\.yaml:\d+:\d+: .*colour"):
        labctl.scenario({"version": 1, "name": "x", "description": "d", "colour": "red",
                         "containers": {"w": {"workload": "sysv-writer"}},
                         "checks": [{"exit": {"container": "w", "code": 0}}]})


LONG = textwrap.dedent("""\
    version: 1
    name: pytest-interrupted
    description: a writer that runs until interrupted
    containers:
      writer:
        workload: sysv-writer
        args: [--count, 0, --interval, 100ms]
        ipc: shareable
    checks:
      - name: far more writes than will ever come
        events: {container: writer, event: wrote, min: 1000000}
        timeout: 120s
    """)

# A reader that waits (the start phase) for a writer that never exits.
WAITS = textwrap.dedent("""\
    version: 1
    name: pytest-interrupted-start
    description: a reader started only after a writer that never exits
    containers:
      writer:
        workload: sysv-writer
        args: [--count, 0, --interval, 100ms]
        ipc: shareable
      reader:
        workload: sysv-reader
        args: [--reads, 1]
        ipc: container:writer
        after: {writer: exited}
    checks:
      - exit: {container: reader, code: 0}
    """)

# Loaded by the inner pytest (``-s``: its fd 1 is our pipe). In the phase named by
# LABCTL_TEST_PHASE it prints ``LABCTL-PHASE <phase>`` once that phase is under way;
# where the phase would be over too soon to be hit (collection, the image build, a
# scenario's teardown, the session's final removal) it then stays there until the test
# closes its stdin, which the test does only after its SIGINT. The start and checks
# phases need no such hold: the scenario itself waits there.
PHASE_CONFTEST = textwrap.dedent('''\
    import os
    import subprocess
    import sys
    import threading

    import labctl.checks.evaluate
    import labctl.cli.common
    import labctl.runner.roster
    import labctl.runner.scenario_run
    import labctl.runtime

    PHASE = os.environ["LABCTL_TEST_PHASE"]


    def mark(phase):
        if phase == PHASE:
            os.write(1, f"\\nLABCTL-PHASE {phase}\\n".encode())


    def hold():
        """Block until our stdin closes."""
        while os.read(0, 4096):
            pass


    def wrap(owner, name, before):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            before()
            return real(*args, **kwargs)

        setattr(owner, name, wrapper)


    def pytest_collect_file(file_path, parent):
        if PHASE == "collection" and file_path.suffix == ".yaml":
            mark("collection")
            hold()


    def build():
        # a long compile (the first musl build takes ~30 s), run as labctl.build runs one
        mark("build")
        subprocess.run([sys.executable, "-c", "import sys; sys.stdin.buffer.read()"], check=False)


    def on_main_thread_removal(engine):
        real = engine.remove_labelled

        def remove(selector):
            if threading.current_thread() is threading.main_thread():  # the plugin's, not a scenario's
                mark("session-end")
                hold()
            return real(selector)

        engine.remove_labelled = remove
        return engine


    if PHASE == "build":
        wrap(labctl.cli.common, "prepare_images", build)
    elif PHASE == "start":
        wrap(labctl.runner.roster.Roster, "wait_condition", lambda: mark("start"))
    elif PHASE == "checks":
        wrap(labctl.checks.evaluate, "evaluate", lambda: mark("checks"))
    elif PHASE == "teardown":
        wrap(labctl.runner.scenario_run, "teardown", lambda: (mark("teardown"), hold()))
    elif PHASE == "session-end":
        real_connect = labctl.runtime.Engine.connect
        labctl.runtime.Engine.connect = lambda *a, **k: on_main_thread_removal(real_connect(*a, **k))
    ''')

# phase -> the scenario it runs (long ones where the scenario itself holds the phase)
PHASES = {"collection": LONG, "build": LONG, "start": WAITS, "checks": LONG,
          "teardown": PASSES.read_text(), "session-end": PASSES.read_text()}


def _sigint_ignored() -> None:
    """What bash does to a background job of a non-interactive shell (`pytest ... &` in a
    CI script): SIGINT ignored, inherited through exec. Python then installs no
    KeyboardInterrupt handler of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("phase", list(PHASES))
def test_ctrl_c_leaves_nothing_behind(pytester: pytest.Pytester, docker_client: docker.DockerClient,
                                      shmlab_image: str, monkeypatch: pytest.MonkeyPatch, phase: str) -> None:
    """SIGINT to ``pytest --labctl`` at a known point of each phase: exit 2 (interrupted),
    nothing of the run left. The inner pytest starts with SIGINT ignored, as from a CI
    script's background job: with Python's default handling it would never notice."""
    pytester.makefile(".yaml", scenario=PHASES[phase])
    pytester.makeconftest(PHASE_CONFTEST)
    monkeypatch.setenv("LABCTL_TEST_PHASE", phase)
    proc = pytester.popen([sys.executable, "-m", "pytest", "--labctl", "scenario.yaml", "-s", "-p", "no:cacheprovider"],
                          stdin=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_sigint_ignored)
    mine = {"label": [f"io.labctl.pid={proc.pid}"]}
    lines: list[str] = []
    marked = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))
            if lines[-1].strip() == f"LABCTL-PHASE {phase}":
                marked.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        reached = marked.wait(120)
        assert reached, f"the inner pytest never reached the {phase} phase:\n{''.join(lines)}"
        proc.send_signal(signal.SIGINT)
        assert proc.stdin is not None
        proc.stdin.close()  # ends a hold (the SIGINT went first)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    out = "".join(lines)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out, out
    assert docker_client.containers.list(all=True, filters=mine) == []
    assert docker_client.volumes.list(filters=mine) == []
