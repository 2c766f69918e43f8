"""The ``steps:`` timeline: its keys (validation and JSON Schema) and its rules.

A step is one engine action on a container (``restart``, ``kill``, ``stop``, ``start``,
``pause``, ``unpause``, ``wait``) or any check kind, which must then hold at that point.
Rules beyond the keys: actions name containers of the file; a ``wait`` has a bound; a
container with ``start: false`` is started by some step; ``wait for: restarts`` (and the
``restarts`` check) needs a container with a restart policy.
"""

from __future__ import annotations

from typing import Any

from labctl.scenario.builder import Builder, get, node_of
from labctl.scenario.shared_specs import EVENT_RE, Ref
from labctl.scenario.compound import F, Obj
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import (
    ACTIONS, DEFAULT_CHECK_TIMEOUT, DEFAULT_GRACE, DEFAULT_STEP_TIMEOUT, WAIT_FOR, CheckSpec, ContainerSpec, Pos,
    StepSpec,
)
from labctl.scenario.spec import INVALID, Duration, Int, Leaf, PDict, Str, join
from labctl.scenario.yamlload import Node

SIGNAL_RE = r"^SIG[A-Z0-9]+$"


def _wait_for(node: Node) -> str:
    import re

    s: str = node.value
    if s in WAIT_FOR or re.match(EVENT_RE, s):
        return s
    raise ValueError(f"invalid wait condition {s!r} (expected exited, running, restarts or an event name)")


WAIT_COND = Leaf("exited, running, restarts or an event name", (str,), {"type": "string", "pattern": EVENT_RE},
                 _wait_for, "exited | running | restarts (with count) | an event name")
GRACE = Duration("SIGTERM, then SIGKILL after this (default 10s)", maximum=3600)

ACTION_FIELDS: dict[str, Obj] = {
    "restart": Obj({"container": F(Ref(), True), "timeout": F(GRACE)},
                   "docker restart: stop (SIGTERM, SIGKILL after timeout), then start again"),
    "kill": Obj({"container": F(Ref(), True),
                 "signal": F(Str("a signal name (default SIGKILL)", pattern=SIGNAL_RE, what="signal",
                                 hint="expected a name such as SIGKILL or SIGTERM"))},
                "docker kill: send a signal to the container's first process"),
    "stop": Obj({"container": F(Ref(), True), "timeout": F(GRACE)},
                "docker stop: SIGTERM, then SIGKILL after timeout"),
    "start": Obj({"container": F(Ref(), True)},
                 "docker start: a start: false container, or one that exited or was stopped"),
    "pause": Obj({"container": F(Ref(), True)}, "docker pause: freeze every process (cgroup freezer)"),
    "unpause": Obj({"container": F(Ref(), True)}, "docker unpause"),
    "wait": Obj({
        "container": F(Ref(), True),
        "for": F(WAIT_COND, True),
        "count": F(Int("for: restarts: the engine's restart count to reach", minimum=1, maximum=10**6)),
        "timeout": F(Duration("how long to wait at most (required here or on the step)")),
    }, "wait until the container exited, runs, restarted count times or printed an event"),
}

STEP_KEYS = (*ACTIONS, *KINDS)

STEP = Obj({
    "name": F(Str("shown in reports; default derived from the action", max_len=200)),
    "timeout": F(Duration("the step's deadline (default 30s for actions, 10s for checks)")),
    "consistently": F(Duration("a check step must hold for this long")),
    **{name: F(spec) for name, spec in ACTION_FIELDS.items()},
    **{name: F(kind.fields) for name, kind in KINDS.items()},
}, "one step: exactly one action or check kind key", one_of=STEP_KEYS, one_of_what="step action or check kind")


def _action(b: Builder, action: str, d: PDict, step: PDict, path: str, name: str | None,
            pos: Pos) -> StepSpec | None:
    apath = join(path, action)
    container = get(d, "container", "")
    if "container" in d.node.value:
        b.ref(container, node_of(d, "container"), join(apath, "container"))
    until = get(d, "for")
    count = get(d, "count")
    step_timeout = get(step, "timeout")
    if "consistently" in step:
        b.ctx.at(node_of(step, "consistently"), join(path, "consistently"),
                 "'consistently' applies to check steps only")
    if action == "wait":
        bound = get(d, "timeout", step_timeout)
        if bound is None and "timeout" not in d and "timeout" not in step:
            b.ctx.at(d.node, apath, "a wait needs a bound: add timeout (e.g. timeout: 20s) to it or to the step")
        if until == "restarts" and count is None:
            b.ctx.at(d.node, apath, "wait for: restarts needs count: N")
        if count is not None and until != "restarts":
            b.ctx.at(node_of(d, "count"), join(apath, "count"), "count applies only to for: restarts")
        if until == "restarts":
            no_policy(b, container, node_of(d, "for"), join(apath, "for"))
        step_timeout = bound
    label = {"wait": f"wait {container} {until}" + (f" {count}" if count else ""),
             "kill": f"kill {container} {get(d, 'signal', 'SIGKILL')}"}.get(action, f"{action} {container}")
    return StepSpec(
        action=action, name=name or label, container=container,
        timeout=step_timeout if step_timeout is not None else DEFAULT_STEP_TIMEOUT,
        grace=get(d, "timeout", DEFAULT_GRACE) if action in ("restart", "stop") else DEFAULT_GRACE,
        signal=get(d, "signal", "SIGKILL"), until=until, count=count, pos=pos)


def no_policy(b: Builder, container: Any, node: Node, path: str) -> None:
    """Record an error when ``container`` has no restart policy: its restart count stays 0."""
    c = next((c for c in b.containers if c.name == container), None)
    if c is not None and c.restart == "no":
        b.ctx.at(node, path, f"container '{container}' has no restart policy (restart: no), so the engine never "
                             "restarts it and its restart count stays 0; give it restart: on-failure[:N] or always")


def build_steps(b: Builder, steps: Any, check_names: dict[str, int]) -> list[StepSpec]:
    """Every entry of ``steps:`` (after ``b.containers`` is set). Check names share one
    namespace with ``checks:`` (``check_names``: name -> line, filled here)."""
    out: list[StepSpec] = []
    if not isinstance(steps, list):
        return out
    for i, d in enumerate(steps):
        if not isinstance(d, PDict):
            continue
        path = f"steps[{i}]"
        keys = [k for k in d if k in STEP_KEYS]
        if len(keys) != 1 or not isinstance(d[keys[0]], PDict):
            continue
        key = keys[0]
        pos = Pos(b.ctx.file, d.node.line, d.node.col)
        name = get(d, "name")
        if key in ACTIONS:
            step = _action(b, key, d[key], d, path, name, pos)
            if step is not None:
                out.append(step)
            continue
        body, default_name = KINDS[key].build(b, d[key], join(path, key))
        name = name or default_name
        node = d.node.value["name"] if "name" in d.node.value else d.node
        if name in check_names:
            b.ctx.at(node, join(path, "name") if "name" in d.node.value else path,
                     f"duplicate check name '{name}' (first at line {check_names[name]}); give each a distinct 'name'")
        check_names.setdefault(name, d.node.line)
        check = CheckSpec(name, key, body, get(d, "timeout", DEFAULT_CHECK_TIMEOUT), get(d, "consistently"), pos)
        out.append(StepSpec("check", name, getattr(body, "container", ""), check.timeout, check=check, pos=pos))
    _started_by_a_step(b, out)
    return out


def _started_by_a_step(b: Builder, steps: list[StepSpec]) -> None:
    """A ``start: false`` container must be started by a ``start`` step, or it never runs."""
    started = {s.container for s in steps if s.action == "start"}
    for c in b.containers:
        if not c.start and c.name not in started:
            node = _start_node(b, c)
            b.ctx.at(node, f"containers.{c.name}.start",
                     f"container '{c.name}' has start: false but no step starts it "
                     f"(add '- start: {{container: {c.name}}}' to steps:)")


def _start_node(b: Builder, c: ContainerSpec) -> Node:
    conts = b.tree.value.get("containers")
    body = conts.value.get(c.name) if conts is not None else None
    if body is not None and body.kind == "map" and "start" in body.value:
        return body.value["start"]
    return Node(None, c.pos.line, c.pos.col)


__all__ = ["STEP", "build_steps", "no_policy", "INVALID"]
