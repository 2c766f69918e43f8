"""Error isolation: whatever goes wrong inside one scenario, in any phase, is that
scenario's ``error`` with the reason, and the run goes on; interrupts are never
swallowed. The engine is faked behind its interface (no engine behaviour is claimed)."""

from __future__ import annotations

import pytest

import labctl.runner as runner
from labctl.errors import Interrupted
from labctl.report.results import ScenarioResult
from labctl.runner.scenario_run import run_scenario
from labctl.scenario import load_text

SCENARIO = """\
version: 1
name: {name}
description: a one-container scenario
containers:
  writer:
    workload: sysv-writer
checks:
  - exit: {{container: writer}}
"""


def scenario(name: str):
    return load_text(SCENARIO.format(name=name), f"{name}.yaml")


class FakeEngine:
    """Starting a container raises ``start_error``; teardown raises ``teardown_error``."""

    name = "docker"

    def __init__(self, start_error: BaseException | None = None, teardown_error: BaseException | None = None):
        self.start_error = start_error
        self.teardown_error = teardown_error
        self.removed: list[dict] = []

    def start_container(self, spec, role, output=None):
        raise self.start_error or AssertionError("not expected")

    def remove_labelled(self, labels):
        self.removed.append(dict(labels))
        if self.teardown_error is not None:
            raise self.teardown_error
        return [], []

    def find(self, labels):
        return {"containers": [], "volumes": [], "networks": []}


def test_an_unexpected_exception_while_starting_is_the_scenarios_error_and_teardown_runs():
    engine = FakeEngine(start_error=KeyError("Pid"))
    res = run_scenario(engine, scenario("a"), "run-1", "img")
    assert res.status == "error"
    assert res.message.startswith("start: KeyError: 'Pid' (at ")
    assert engine.removed, "teardown did not run"


def test_a_teardown_that_raises_is_the_scenarios_error_with_both_reasons():
    engine = FakeEngine(start_error=RuntimeError("boom"), teardown_error=OSError("engine went away"))
    res = run_scenario(engine, scenario("a"), "run-1", "img")
    assert res.status == "error"
    assert "start: RuntimeError: boom" in res.message
    assert "teardown: OSError: engine went away" in res.message


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_scenario_raising_does_not_end_the_run(monkeypatch, jobs):
    def fake(engine, s, run_id, image, **_kw):
        if s.name == "bad":
            raise ValueError("an engine reply labctl did not foresee")
        return ScenarioResult(s.name, s.file, "passed")

    monkeypatch.setattr(runner, "run_scenario", fake)
    run = runner.run_all(FakeEngine(), [scenario("bad"), scenario("good")], "img", run_id="run-1", jobs=jobs)
    by = {s.name: s for s in run.scenarios}
    assert by["bad"].status == "error" and "ValueError: an engine reply" in by["bad"].message
    assert by["good"].status == "passed"


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupt_is_never_turned_into_a_scenario_error(monkeypatch, jobs):
    def fake(engine, s, run_id, image, **_kw):
        raise Interrupted()

    monkeypatch.setattr(runner, "run_scenario", fake)
    with pytest.raises(Interrupted):
        runner.run_all(FakeEngine(), [scenario("a")], "img", run_id="run-1", jobs=jobs)
