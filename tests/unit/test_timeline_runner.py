"""The timeline in the runner against a fake engine (no Docker): steps in order, the
engine operation each action stands for, start: false, stopping at the first step that
does not pass, and how reports show it."""

from __future__ import annotations

import json

from labctl.errors import EngineError
from labctl.runtime.logs import ExitStatus, Output
from labctl.report.formats import to_dict, to_junit, to_text
from labctl.report.results import RunResult
from labctl.runner import run_scenario
from labctl.scenario import load_text


class FakeContainer:
    """Plays a role: prints ``script[run]`` events when started (run 1, 2...)."""

    def __init__(self, engine: "FakeEngine", role: str, name: str, output: Output | None) -> None:
        self.engine, self.role, self.name, self.id = engine, role, name, name
        self.output = output if output is not None else Output()
        self.status = "created"
        self.runs = 0
        self.restarts = 0

    def _log(self, what: str) -> None:
        self.engine.calls.append(f"{what} {self.role}")

    def start(self) -> None:
        self._log("start")
        if self.role in self.engine.refuse:
            raise EngineError(self.engine.refuse[self.role])
        self.runs += 1
        self.status = "running"
        self.output.reopen()
        lines = self.engine.script.get(self.role, [{"event": "start"}, {"event": "holding"}])
        self.output.feed("stdout", "".join(json.dumps({**e, "n": self.runs}) + "\n" for e in lines).encode())

    def stop(self, timeout: float = 10.0) -> ExitStatus | None:
        self._log(f"stop -t {timeout:g}")
        self.status = "exited"
        return ExitStatus(0)

    def kill(self, signal: str = "SIGKILL") -> None:
        self._log(f"kill -s {signal}")
        self.status = "exited"

    def pause(self) -> None:
        self._log("pause")
        if "pause" in self.engine.fail:
            raise EngineError(f"pausing container {self.role!r}: cgroup freezer unavailable")

    def unpause(self) -> None:
        self._log("unpause")

    def remove(self) -> None:
        pass

    def state(self) -> dict:
        return {"Status": self.status, "ExitCode": 0 if self.status == "exited" else None}

    def pid(self) -> int | None:
        return None

    def poll_exit(self) -> ExitStatus | None:
        return ExitStatus(0) if self.status == "exited" else None

    def wait_exit(self, timeout: float) -> ExitStatus | None:
        return self.poll_exit()

    def restart_count(self) -> int:
        return self.restarts

    def memory_usage(self) -> int | None:
        return 1 << 20 if self.status == "running" else None

    def exec(self, cmd: list[str], timeout: float | None = None) -> tuple[int, str]:
        return 0, json.dumps({"event": "probe", "objects": {"shm": 2}, "ipcns": "ipc:[1]"})


class FakeEngine:
    address = "fake"

    def __init__(self, script: dict | None = None, fail: tuple[str, ...] = (), refuse: dict | None = None) -> None:
        self.script = script or {}
        self.fail = fail
        self.refuse = refuse or {}
        self.calls: list[str] = []
        self.created: dict[str, FakeContainer] = {}

    def start_container(self, spec, role: str, output: Output | None = None, *, start: bool = True) -> FakeContainer:
        c = self.created[role] = FakeContainer(self, role, spec.name, output)
        self.calls.append(f"create {role}")
        if start:
            c.start()
        return c

    def create_volume(self, name, labels, driver_opts=None) -> str:
        return name

    def remove_labelled(self, labels) -> tuple[list[str], list[str]]:
        return [], []

    def find(self, labels) -> dict[str, list[str]]:
        return {"containers": [], "volumes": [], "networks": []}


HEAD = """version: 1
name: t
description: a timeline on a fake engine
containers:
  holder: {workload: hold, ipc: shareable}
  app: {workload: hold, ipc: "container:holder", start: false}
"""


def run(text: str, engine: FakeEngine):
    return run_scenario(engine, load_text(HEAD + text, "t.yaml"), "0123456789abcdef", "img:1")


def test_actions_run_in_order_as_engine_operations():
    engine = FakeEngine()
    res = run("""steps:
  - start: {container: app}
  - name: app holds
    events: {container: app, event: holding}
  - pause: {container: app}
  - unpause: {container: app}
  - restart: {container: app, timeout: 2s}
  - name: second run
    events: {container: app, event: holding, where: {run: 2}}
  - kill: {container: app, signal: SIGTERM}
  - wait: {container: app, for: exited, timeout: 2s}
  - stop: {container: holder, timeout: 1s}
checks:
  - objects: {in: holder, shm: 2}
  - exit: {container: app, code: 0}
""", engine)
    assert res.status == "passed", (res.message, res.steps, res.checks)
    calls = [c for c in engine.calls if not c.endswith(("probe-holder",))]
    assert calls == ["create holder", "start holder", "create app", "start app", "pause app", "unpause app",
                     "stop -t 2 app", "start app", "kill -s SIGTERM app", "stop -t 1 holder"]
    assert [s.status for s in res.steps] == ["passed"] * 9
    assert all(a.at_s <= b.at_s for a, b in zip(res.steps, res.steps[1:]))
    assert res.steps[-2].observed == "exited with 0"


def test_a_failing_check_step_stops_the_timeline_and_fails_the_scenario():
    engine = FakeEngine()
    res = run("""steps:
  - start: {container: app}
  - name: never printed
    events: {container: app, event: nope}
    timeout: 200ms
  - pause: {container: app}
checks:
  - exit: {container: app}
""", engine)
    assert res.status == "failed"
    assert [s.status for s in res.steps] == ["passed", "failed", "not run"]
    assert "pause app" not in engine.calls
    assert res.checks[0].status == "skipped" and "stopped at step 2" in res.checks[0].message
    assert "step 2 (never printed)" in res.message
    text = to_text(RunResult("r", [res]))
    assert "NOT RUN pause app" in text and "FAIL    never printed" in text


def test_an_action_the_engine_refuses_makes_the_scenario_an_error():
    res = run("""steps:
  - start: {container: app}
  - pause: {container: app}
  - unpause: {container: app}
checks:
  - exit: {container: app}
""", FakeEngine(fail=("pause",)))
    assert res.status == "error"
    assert [s.status for s in res.steps] == ["passed", "error", "not run"]
    assert "cgroup freezer unavailable" in res.steps[1].message


def test_a_wait_that_runs_out_is_an_error_naming_its_bound():
    res = run("""steps:
  - start: {container: app}
  - wait: {container: app, for: exited, timeout: 300ms}
checks:
  - exit: {container: app}
""", FakeEngine())
    assert res.status == "error"
    assert "app not exited within 0.3s (status running)" in res.steps[1].message


def test_wait_for_an_event_looks_at_the_current_run_only():
    engine = FakeEngine(script={"app": [{"event": "start"}, {"event": "attached"}]})
    res = run("""steps:
  - start: {container: app}
  - wait: {container: app, for: attached, timeout: 2s}
  - restart: {container: app}
  - wait: {container: app, for: attached, timeout: 2s}
checks:
  - events: {container: app, event: attached, where: {run: 2}}
""", engine)
    assert res.status == "passed", res.steps
    assert res.steps[3].observed == "'attached' seen in run 2"


def test_reports_carry_the_steps():
    res = run("""steps:
  - start: {container: app}
checks:
  - objects: {in: holder, shm: 2}
""", FakeEngine())
    assert res.status == "passed"
    doc = to_dict(RunResult("r", [res]))
    [step] = doc["scenarios"][0]["steps"]
    assert step["name"] == "start app" and step["action"] == "start" and step["status"] == "passed"
    assert "at_s" in step and "duration_s" in step
    assert "timeline:" in to_junit(RunResult("r", [res]))


def test_since_step_counts_only_what_comes_after_the_step_began():
    res = run("""steps:
  - start: {container: app}
  - name: nothing new
    events: {container: app, event: holding, since: step, min: 0, max: 0}
    consistently: 200ms
  - restart: {container: app}
  - name: the second run printed it again
    events: {container: app, event: holding, where: {run: 2}}
  - name: but not since this step
    events: {container: app, event: holding, since: step, min: 1}
    timeout: 300ms
checks:
  - objects: {in: holder, shm: 2}
""", FakeEngine())
    assert [s.status for s in res.steps] == ["passed", "passed", "passed", "passed", "failed"], res.steps
