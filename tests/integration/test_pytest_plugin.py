"""The pytest plugin on the real engine: the library as pytest items (same outcome as
``labctl run``), a failing scenario's report in JUnit, the ``labctl`` fixture, and a
Ctrl-C that leaves nothing behind (the leak guard checks every test too)."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

import docker
import pytest

from labctl import scenario as scen
from labctl.cli.common import missing_opt_ins

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
PASSES = REPO / "tests/data/failing/passes.yaml"
FAILS = REPO / "tests/data/failing/expects-sharing-across-private.yaml"


def test_the_library_as_pytest_items(pytester: pytest.Pytester, shmlab_image: str) -> None:
    library = scen.load_all([str(REPO / "scenarios")])
    needs_opt_in = [s for s in library if missing_opt_ins(s, {})]
    res = pytester.runpytest_subprocess("--labctl", str(REPO / "scenarios"), "--labctl-jobs", "3",
                                        "-p", "no:cacheprovider", timeout=900)
    res.assert_outcomes(passed=len(library) - len(needs_opt_in), skipped=len(needs_opt_in))


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


def test_ctrl_c_leaves_nothing_behind(pytester: pytest.Pytester, docker_client: docker.DockerClient,
                                      shmlab_image: str) -> None:
    pytester.makefile(".yaml", long=LONG)
    proc = pytester.popen([sys.executable, "-m", "pytest", "--labctl", "long.yaml", "-p", "no:cacheprovider"],
                          stdin=-1)
    mine = {"label": [f"io.labctl.pid={proc.pid}"]}
    try:
        deadline = time.monotonic() + 120
        while not docker_client.containers.list(filters=mine) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)  # polling interval of a bounded wait
        assert docker_client.containers.list(filters=mine), "the scenario's container never started"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert docker_client.containers.list(all=True, filters=mine) == []
    assert docker_client.volumes.list(filters=mine) == []
