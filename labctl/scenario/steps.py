"""The ``steps:`` timeline: its keys (validation and JSON Schema) and its rules.

A step is one engine action on a container (``restart``, ``kill``, ``stop``, ``start``,
``pause``, ``unpause``, ``wait``) or any check kind, which must then hold at that point.
Rules beyond the keys: actions name containers of the file; a ``wait`` has a bound; a
container with ``start: false`` is started by some step; ``wait for: restarts`` (and the
``restarts`` check) needs a container with a restart policy.
"""

from __future__ import annotations

from typing import Any

from labctl.scenario.actions.step_action import no_policy
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.builder import Builder, get, node_of
from labctl.scenario.check_specs import build_check, entries
from labctl.scenario.compound import F, Obj
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import (
    DEFAULT_CHECK_TIMEOUT, DEFAULT_GRACE, DEFAULT_STEP_TIMEOUT, CheckSpec, ContainerSpec, Pos, StepSpec,
)
from labctl.scenario.spec import INVALID, Duration, PDict, Str, join
from labctl.scenario.yamlload import Node

STEP_KEYS = (*ACTIONS, *KINDS)

STEP = Obj({
    "name": F(Str("shown in reports; default derived from the action", max_len=200)),
    "timeout": F(Duration("the step's deadline (default 30s for actions, 10s for checks)")),
    "consistently": F(Duration("a check step must hold for this long")),
    **{name: F(action.spec) for name, action in ACTIONS.items()},
    **{name: F(kind.spec) for name, kind in KINDS.items()},
}, "one step: exactly one action or check kind key", one_of=STEP_KEYS, one_of_what="step action or check kind")


def _action(b: Builder, action: str, d: PDict, step: PDict, path: str, name: str | None,
            pos: Pos) -> StepSpec | None:
    """One action step: the keys every action shares here, the rest from ``ACTIONS[action].read``."""
    apath = join(path, action)
    container = get(d, "container", "")
    if "container" in d.node.value:
        b.ref(container, node_of(d, "container"), join(apath, "container"))
    if "consistently" in step:
        b.ctx.at(node_of(step, "consistently"), join(path, "consistently"),
                 "'consistently' applies to check steps only")
    fields = {"timeout": get(step, "timeout"), "grace": DEFAULT_GRACE, "name": f"{action} {container}",
              **ACTIONS[action].read(b, d, step, apath)}
    if name:
        fields["name"] = name
    if fields["timeout"] is None:
        fields["timeout"] = DEFAULT_STEP_TIMEOUT
    return StepSpec(action=action, container=container, pos=pos, **fields)


def build_steps(b: Builder, steps: Any, check_names: dict[str, int]) -> list[StepSpec]:
    """Every entry of ``steps:`` (after ``b.containers`` is set). Check names share one
    namespace with ``checks:`` (``check_names``: name -> line, filled here)."""
    out: list[StepSpec] = []
    for path, d, key in entries(b, steps, "steps", STEP_KEYS):
        pos = Pos(b.ctx.file, d.node.line, d.node.col)
        if key in ACTIONS:
            step = _action(b, key, d[key], d, path, get(d, "name"), pos)
            if step is not None:
                out.append(step)
            continue
        body, name = build_check(b, d, path, key, check_names)
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
