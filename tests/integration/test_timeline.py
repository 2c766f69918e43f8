"""The timeline on the real engine: every action does what its engine operation does, a
failing case for each new check kind, run numbers across restarts by the engine's
policy, and a check step that fails stops the timeline. The leak guard (conftest) checks
that nothing is left behind."""

from __future__ import annotations

import uuid

import pytest

from labctl.report.results import ScenarioResult
from labctl.runner import run_scenario
from labctl.scenario import load_text

pytestmark = pytest.mark.integration


def run(engine, image: str, body: str, name: str = "timeline-it") -> ScenarioResult:
    text = f"version: 1\nname: {name}\ndescription: a timeline test\ntimeout: 60s\n" + body
    return run_scenario(engine, load_text(text, f"{name}.yaml"), str(uuid.uuid4()), image)


def statuses(res: ScenarioResult) -> dict[str, str]:
    return {c.name: c.status for c in res.checks} | {s.name: s.status for s in res.steps}


def test_every_action_on_the_engine(engine, shmlab_image):
    res = run(engine, shmlab_image, """containers:
  writer: {workload: sysv-writer, args: [--count, 0, --interval, 50ms], ipc: shareable}
  late: {workload: sysv-reader, args: [--reads, 1000, --interval, 50ms], ipc: "container:writer", start: false}
steps:
  - name: late is created, not started
    output: {container: writer, matches: attached}
  - start: {container: late}
  - wait: {container: late, for: read, timeout: 10s}
  - pause: {container: writer}
  - name: paused, the writer stops counting
    events: {container: writer, event: wrote, since: step, min: 0, max: 1}
    consistently: 500ms
  - unpause: {container: writer}
  - wait: {container: writer, for: running, timeout: 5s}
  - restart: {container: writer, timeout: 1s}
  - wait: {container: writer, for: attached, timeout: 10s}
  - name: the restarted writer's second run
    events: {container: writer, event: start, where: {run: 2}}
  - stop: {container: late, timeout: 5s}
  - kill: {container: writer, signal: SIGKILL}
  - wait: {container: writer, for: exited, timeout: 10s}
checks:
  - name: late stopped by SIGTERM and cleaned up
    events: {container: late, event: signal, where: {signal: SIGTERM}}
  - name: writer killed
    exit: {container: writer, signal: SIGKILL}
  - name: its first run ended with SIGTERM from the restart
    events: {container: writer, event: signal, where: {run: 1, signal: SIGTERM}}
  - cleanup: {}
""")
    assert res.status == "passed", (res.message, res.steps, res.checks)
    assert len(res.steps) == 13 and all(s.status == "passed" for s in res.steps)


def test_each_new_check_kind_fails_when_its_condition_does_not_hold(engine, shmlab_image):
    res = run(engine, shmlab_image, """containers:
  holder: {workload: hold, ipc: shareable}
  app:
    workload: sysv-private
    args: [--count, 2, --size, 64k]
    ipc: container:holder
  crasher:
    workload: sysv-private
    args: [--exit, 1]
    restart: on-failure:1
  filler:
    workload: devshm-fill
    args: [--name, /f, --size, 24m, --hold, attached]
  killed: {workload: hold}
steps:
  - wait: {container: crasher, for: exited, timeout: 20s}
  - wait: {container: filler, for: filled, timeout: 20s}
  - wait: {container: app, for: holding, timeout: 20s}
  - kill: {container: killed, signal: SIGKILL}
  - wait: {container: killed, for: exited, timeout: 10s}
checks:
  - name: restarts fails
    restarts: {container: crasher, count: 3}
    timeout: 1s
  - name: restarts passes
    restarts: {container: crasher, count: 1}
  - name: objects fails
    objects: {in: holder, shm: 5}
    timeout: 1s
  - name: objects passes
    objects: {in: holder, shm: 2, devshm_files: 0}
  - name: memory fails
    memory: {container: filler, usage: {lt: 8m}}
    timeout: 1s
  - name: memory passes
    memory: {container: filler, usage: {ge: 24m}}
  - name: oom_killed fails for a plain SIGKILL
    exit: {container: killed, oom_killed: true}
    timeout: 1s
  - name: oom_killed false passes
    exit: {container: killed, signal: SIGKILL, oom_killed: false}
  - cleanup: {}
""")
    s = statuses(res)
    assert res.status == "failed"
    for kind in ("restarts", "objects", "memory"):
        assert s[f"{kind} fails"] == "failed", (kind, res.checks)
        assert s[f"{kind} passes"] == "passed", (kind, res.checks)
    assert s["oom_killed fails for a plain SIGKILL"] == "failed" and s["oom_killed false passes"] == "passed"
    by_name = {c.name: c for c in res.checks}
    assert "restart count 1" in by_name["restarts fails"].observed
    assert "shm 2" in by_name["objects fails"].observed
    assert "MiB" in by_name["memory fails"].observed


def test_runs_are_numbered_across_restarts_by_the_policy(engine, shmlab_image):
    res = run(engine, shmlab_image, """containers:
  app:
    workload: sysv-private
    args: [--exit, 3]
    restart: on-failure:2
steps:
  - wait: {container: app, for: restarts, count: 2, timeout: 20s}
  - wait: {container: app, for: exited, timeout: 20s}
checks:
  - name: one exiting event per run, numbered 1 to 3
    events: {container: app, event: exiting, where: {run: {le: 3}}, min: 3, max: 3, rising: run}
  - restarts: {container: app, count: 2}
  - exit: {container: app, code: 3}
  - cleanup: {}
""")
    assert res.status == "passed", (res.message, res.steps, res.checks)


def test_a_failing_check_step_stops_the_timeline(engine, shmlab_image, docker_client):
    res = run(engine, shmlab_image, """containers:
  writer: {workload: sysv-writer, args: [--count, 0], ipc: shareable}
steps:
  - name: an event that never comes
    events: {container: writer, event: never}
    timeout: 500ms
  - pause: {container: writer}
checks:
  - exit: {container: writer}
  - cleanup: {}
""")
    assert res.status == "failed"
    assert [s.status for s in res.steps] == ["failed", "not run"]
    assert {c.name: c.status for c in res.checks} == {"exit writer": "skipped", "cleanup": "passed"}
