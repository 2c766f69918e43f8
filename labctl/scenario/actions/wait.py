"""The ``wait`` step: until a container exited, runs, was restarted N times, or printed an event."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, Reading, Stage, StepAction, StepFailed, no_policy
from labctl.scenario.builder import get, node_of
from labctl.scenario.compound import F, Obj
from labctl.scenario.shared_specs import EVENT_RE
from labctl.scenario.model import WAIT_FOR
from labctl.scenario.spec import Duration, Int, Leaf, join

if TYPE_CHECKING:
    from labctl.runtime.engine import Container
    from labctl.scenario.builder import Builder
    from labctl.scenario.model import StepSpec
    from labctl.scenario.spec import PDict
    from labctl.scenario.yamlload import Node

POLL_MIN = 0.02  # engine-state waits poll with a bounded backoff (no event to wait on)
POLL_MAX = 0.25


def _wait_for(node: Node) -> str:
    s: str = node.value
    if s in WAIT_FOR or re.match(EVENT_RE, s):
        return s
    raise ValueError(f"invalid wait condition {s!r} (expected exited, running, restarts or an event name)")


WAIT_COND = Leaf("exited, running, restarts or an event name", (str,), {"type": "string", "pattern": EVENT_RE},
                 _wait_for, "exited | running | restarts (with count) | an event name")

SPEC = Obj({
    "container": CONTAINER,
    "for": F(WAIT_COND, True),
    "count": F(Int("for: restarts: the engine's restart count to reach", minimum=1, maximum=10**6)),
    "timeout": F(Duration("how long to wait at most (required here or on the step)")),
}, "wait until the container exited, runs, restarted count times or printed an event")


def read(b: Builder, d: PDict, step: PDict, path: str) -> Reading:
    """A wait needs a bound (its own ``timeout`` or the step's); ``count`` goes with
    ``for: restarts`` only, and that needs a container with a restart policy."""
    until, count = get(d, "for"), get(d, "count")
    bound = get(d, "timeout", get(step, "timeout"))
    if bound is None and "timeout" not in d and "timeout" not in step:
        b.ctx.at(d.node, path, "a wait needs a bound: add timeout (e.g. timeout: 20s) to it or to the step")
    if until == "restarts" and count is None:
        b.ctx.at(d.node, path, "wait for: restarts needs count: N")
    if count is not None and until != "restarts":
        b.ctx.at(node_of(d, "count"), join(path, "count"), "count applies only to for: restarts")
    if until == "restarts":
        no_policy(b, get(d, "container", ""), node_of(d, "for"), join(path, "for"))
    return {"until": until, "count": count, "timeout": bound,
            "name": f"wait {get(d, 'container', '')} {until}" + (f" {count}" if count else "")}


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """Wait on the container's output for an event of its current run, or poll the engine's
    state (with a bounded backoff) for exited / running / the restart count; StepFailed at
    ``deadline``."""
    c = stage.container(step)
    until = step.until or "exited"
    if until not in WAIT_FOR:
        return _event(stage, step, c, until, deadline)
    pause = POLL_MIN
    while True:
        state = c.state()
        status = str(state.get("Status", ""))
        if until == "exited" and status in ("exited", "dead") and not state.get("Restarting"):
            return f"exited with {state.get('ExitCode')}"
        if until == "running" and status == "running":
            return "running"
        if until == "restarts":
            n = c.restart_count()
            if n >= (step.count or 1):
                return f"restart count {n}"
        if stage.clock() >= deadline:
            now = f"restart count {c.restart_count()}" if until == "restarts" else f"status {status}"
            raise StepFailed(f"{step.container} not {until}"
                             + (f" {step.count} times" if until == "restarts" else "")
                             + f" within {step.timeout:g}s ({now})")
        stage.check_cancel()
        stage.sleep(min(pause, max(0.0, deadline - stage.clock())))
        pause = min(pause * 2, POLL_MAX)


def _event(stage: Stage, step: StepSpec, c: Container, until: str, deadline: float) -> str:
    out = c.output

    def seen() -> bool:  # under the output's lock (wait_for)
        return out.current_run == out.run and until in out.run_first

    while not out.wait_for(seen, min(deadline, stage.clock() + 0.5), stage.clock):
        stage.check_cancel()
        if stage.clock() >= deadline:
            raise StepFailed(f"{step.container} printed no {until!r} event in its current run "
                             f"(run {out.current_run}) within {step.timeout:g}s")
    return f"{until!r} seen in run {out.current_run}"


def compose(step: StepSpec) -> str:
    what = {"exited": "has exited", "running": "runs", "restarts": f"was restarted {step.count} time(s)"}.get(
        step.until or "", f"printed the event '{step.until}'")
    return f"wait until {step.container} {what} (at most {step.timeout:g}s)"


ACTION = StepAction("wait", SPEC, act, compose, read, k8s=None)
