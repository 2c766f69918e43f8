"""The pytest plugin, through pytest's own ``pytester``: collection, markers, opt-in
skips, failure reports, file errors, the ini option. The runner is replaced by a fake
behind its entry points (``Engine.connect``, ``build.ensure_image``, ``runner.run_all``);
the real-engine runs are in tests/integration/test_pytest_plugin.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labctl import runner

from labctl.images import build
from labctl.report.results import CheckResult, RunResult, ScenarioResult
from labctl.runtime import Engine

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]


def scenario(name: str, tags: str = "[sysv]") -> str:
    return textwrap.dedent(f"""\
        version: 1
        name: {name}
        description: a writer alone
        tags: {tags}
        containers:
          writer:
            workload: sysv-writer
            args: [--count, 3, --interval, 10ms]
        checks:
          - name: writer writes
            events: {{container: writer, event: wrote, min: 3}}
        """)


HOST_IPC = textwrap.dedent("""\
    version: 1
    name: needs-host
    description: a writer in the host's IPC namespace
    containers:
      writer:
        workload: sysv-writer
        args: [--count, 3, --interval, 10ms]
        ipc: host
    checks:
      - events: {container: writer, event: wrote, min: 3}
    """)


class FakeEngine:
    def __init__(self) -> None:
        self.removed: list[dict] = []

    def remove_labelled(self, sel: dict) -> tuple[list[str], list[str]]:
        self.removed.append(sel)
        return [], []

    def close(self) -> None:
        pass


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Outcomes by scenario name (default passed); records what the runner was given."""
    state: dict = {"outcomes": {}, "ran": [], "jobs": None, "engine": FakeEngine()}

    def run_all(engine, scenarios, image, *, run_id, jobs=1, keep=False, cancel=None, progress=None,
                on_result=None, images=None, platform=None):
        state["jobs"], state["run_id"] = jobs, run_id
        results = []
        for s in scenarios:
            state["ran"].append(s.name)
            status = state["outcomes"].get(s.name, "passed")
            checks = [CheckResult("writer writes", "failed" if status == "failed" else "passed",
                                  expected="at least 3 'wrote' events", observed="1 'wrote' event")]
            res = ScenarioResult(s.name, s.file, status, 0.1, checks,
                                 message="engine said no" if status == "error" else "",
                                 logs={"writer": '{"event":"wrote","count":1}\nwriter: last words'}
                                 if status != "passed" else {})
            results.append(res)
            if on_result:
                on_result(res)
        return RunResult(run_id, results)

    monkeypatch.setattr(Engine, "connect", classmethod(lambda cls, *a, **k: state["engine"]))
    monkeypatch.setattr(build, "ensure_image", lambda engine, **kw: build.BuildResult("labctl/shmlab:fake", False, 0.0, "fake"))
    monkeypatch.setattr(runner, "run_all", run_all)
    return state


def test_inert_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", alpha=scenario("alpha"))
    res = pytester.runpytest("--collect-only", "-q")
    assert "alpha" not in res.stdout.str()
    assert res.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_collects_one_item_per_file_named_by_the_scenario_with_tag_markers(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", alpha=scenario("alpha-scn", "[sysv, pitfall]"), beta=scenario("beta-scn", "[mmap]"))
    res = pytester.runpytest("--labctl", "--collect-only", "-q", "--strict-markers")
    res.stdout.fnmatch_lines(["alpha.yaml::alpha-scn", "beta.yaml::beta-scn", "2 tests collected*"])
    res = pytester.runpytest("--labctl", "--collect-only", "-q", "--strict-markers", "-m", "pitfall")
    res.stdout.fnmatch_lines(["alpha.yaml::alpha-scn", "1/2 tests collected (1 deselected)*"])
    res = pytester.runpytest("--labctl", "--collect-only", "-q", "-m", "not pitfall", "-k", "beta")
    res.stdout.fnmatch_lines(["beta.yaml::beta-scn", "1/2 tests collected (1 deselected)*"])


def test_passing_and_failing_items_with_labctls_report(pytester: pytest.Pytester, fake_run: dict) -> None:
    pytester.makefile(".yaml", good=scenario("good"), bad=scenario("bad"))
    fake_run["outcomes"]["bad"] = "failed"
    res = pytester.runpytest("--labctl", "--labctl-jobs", "3", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    # the failure is labctl's text report: the check, expected, observed, the output tail
    assert "writer writes" in out and "at least 3 'wrote' events" in out and "1 'wrote' event" in out
    assert "writer: last words" in out
    assert "Traceback" not in out and "pytest_plugin.py" not in out
    assert fake_run["jobs"] == 3 and sorted(fake_run["ran"]) == ["bad", "good"]
    # the session's run is removed by its labels at the end
    assert {"io.labctl.run-id": fake_run["run_id"]} in fake_run["engine"].removed


def test_error_status_fails_the_item_with_the_reason(pytester: pytest.Pytester, fake_run: dict) -> None:
    pytester.makefile(".yaml", broken=scenario("broken"))
    fake_run["outcomes"]["broken"] = "error"
    res = pytester.runpytest("--labctl")
    res.assert_outcomes(failed=1)
    assert "engine said no" in res.stdout.str()


def test_junitxml_has_one_testcase_per_selected_scenario(pytester: pytest.Pytester, fake_run: dict) -> None:
    pytester.makefile(".yaml", a=scenario("a-pit", "[pitfall]"), b=scenario("b-pit", "[pitfall, sysv]"),
                      c=scenario("c-other", "[sysv]"))
    fake_run["outcomes"]["b-pit"] = "failed"
    res = pytester.runpytest("--labctl", "-m", "pitfall", "--junitxml=out.xml")
    res.assert_outcomes(passed=1, failed=1, deselected=1)
    xml = (pytester.path / "out.xml").read_text()
    assert xml.count("<testcase ") == 2 and 'name="a-pit"' in xml and 'name="b-pit"' in xml
    assert "1 'wrote' event" in xml  # the failure's report travels in the JUnit file


def test_opt_in_scenarios_are_skipped_naming_the_flag(pytester: pytest.Pytester, fake_run: dict) -> None:
    pytester.makefile(".yaml", host=HOST_IPC)
    res = pytester.runpytest("--labctl", "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*needs --labctl-allow-host-ipc*"])
    assert fake_run["ran"] == []
    res = pytester.runpytest("--labctl", "--labctl-allow-host-ipc")
    res.assert_outcomes(passed=1)
    assert fake_run["ran"] == ["needs-host"]


def test_a_bad_file_is_a_collection_error_with_its_position(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", broken=scenario("broken").replace("min: 3", "min: 3, colour: red"))
    res = pytester.runpytest("--labctl")
    assert res.ret == pytest.ExitCode.INTERRUPTED  # pytest stops on collection errors
    out = res.stdout.str()
    res.stdout.fnmatch_lines(["*broken.yaml:11:*: checks[[]0[]].events.colour: unknown key 'colour'*"])
    assert "Traceback" not in out and "yamlload" not in out


def test_ini_labctl_paths_collects_without_the_option(pytester: pytest.Pytester, fake_run: dict) -> None:
    pytester.mkdir("scen")
    (pytester.path / "scen" / "one.yaml").write_text(scenario("one"))
    pytester.makefile(".yaml", stray=scenario("stray"))  # outside labctl_paths: not collected
    pytester.makeini("[pytest]\nlabctl_paths = scen\n")
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    res = pytester.runpytest()
    res.assert_outcomes(passed=2)
    assert fake_run["ran"] == ["one"]


def test_unreachable_engine_fails_every_item_with_the_reason(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.errors import EngineError

    def refuse(cls, *a, **k):
        raise EngineError("the Docker engine at unix:///nowhere does not answer")

    monkeypatch.setattr(Engine, "connect", classmethod(refuse))
    pytester.makefile(".yaml", a=scenario("a"), b=scenario("b"))
    res = pytester.runpytest("--labctl")
    res.assert_outcomes(failed=2)
    assert res.stdout.str().count("does not answer") >= 2 and "Traceback" not in res.stdout.str()
