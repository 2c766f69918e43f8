"""The steps: timeline and the lifecycle container keys, as the loader builds them."""

from __future__ import annotations

import json

import pytest

from labctl.errors import ScenarioErrors
from labctl.scenario import load_text
from labctl.scenario.schema import json_schema

HEAD = """version: 1
name: t
description: a timeline
containers:
  donor: {workload: sysv-writer, ipc: shareable, restart: "on-failure:3", memory: 64m, memory_swap: 64m}
  app: {workload: hold, ipc: "container:donor", start: false}
"""


def load(steps: str, checks: str = "checks:\n  - exit: {container: app}\n"):
    return load_text(HEAD + steps + checks, "t.yaml")


def test_every_action_and_a_check_step():
    s = load("""steps:
  - start: {container: app}
  - restart: {container: donor, timeout: 2s}
  - kill: {container: app, signal: SIGTERM}
  - stop: {container: app}
  - pause: {container: donor}
  - unpause: {container: donor}
  - wait: {container: donor, for: restarts, count: 2, timeout: 20s}
  - wait: {container: app, for: attached}
    timeout: 5s
  - name: reads
    events: {container: app, event: read, since: step, max: 1}
    consistently: 1s
""")
    acts = [(st.action, st.container) for st in s.steps]
    assert acts == [("start", "app"), ("restart", "donor"), ("kill", "app"), ("stop", "app"),
                    ("pause", "donor"), ("unpause", "donor"), ("wait", "donor"), ("wait", "app"),
                    ("check", "app")]
    assert s.steps[1].grace == 2.0 and s.steps[2].signal == "SIGTERM"
    assert s.steps[6].until == "restarts" and s.steps[6].count == 2 and s.steps[6].timeout == 20.0
    assert s.steps[7].until == "attached" and s.steps[7].timeout == 5.0
    check = s.steps[8].check
    assert check is not None and check.consistently == 1.0 and check.body.since_step
    donor, app = s.containers
    assert (donor.memory, donor.memory_swap, donor.restart, donor.start) == (64 << 20, 64 << 20, "on-failure:3", True)
    assert app.start is False


def test_step_check_names_share_the_checks_namespace():
    with pytest.raises(ScenarioErrors) as info:
        load("steps:\n  - start: {container: app}\n  - name: x\n    exit: {container: app}\n",
             "checks:\n  - name: x\n    exit: {container: app}\n")
    assert "duplicate check name 'x'" in str(info.value)


def test_consistently_on_an_action_is_refused_at_its_position():
    with pytest.raises(ScenarioErrors) as info:
        load("steps:\n  - start: {container: app}\n    consistently: 1s\n")
    e = info.value.errors[0]
    assert (e.line, e.path) == (9, "steps[0].consistently")


def test_wait_for_restarts_needs_a_count():
    with pytest.raises(ScenarioErrors) as info:
        load("steps:\n  - start: {container: app}\n  - wait: {container: donor, for: restarts, timeout: 5s}\n")
    assert "needs count: N" in str(info.value)


def test_memory_below_the_engine_minimum():
    with pytest.raises(ScenarioErrors) as info:
        load_text(HEAD.replace("memory: 64m, memory_swap: 64m", "memory: 1m")
                  + "steps:\n  - start: {container: app}\n" + "checks:\n  - exit: {container: app}\n", "t.yaml")
    assert "at least 6m" in str(info.value)


def test_schema_describes_the_timeline():
    schema = json_schema()
    text = json.dumps(schema)
    step = schema["properties"]["steps"]["items"]
    for action in ("restart", "kill", "stop", "start", "pause", "unpause", "wait"):
        assert action in step["properties"], action
    for kind in ("restarts", "objects", "memory", "events"):
        assert kind in step["properties"], kind
    container = schema["properties"]["containers"]["additionalProperties"]
    for key in ("memory", "memory_swap", "restart", "start"):
        assert key in container["properties"], key
    assert "oom_killed" in text
