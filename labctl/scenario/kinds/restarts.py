"""``restarts``: the engine's restart count of a container (restarts by its restart policy)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import COUNT, Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.scenario.actions.step_action import no_policy
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, not_started, ref
from labctl.scenario.model import Expect
from labctl.scenario.spec import INVALID, PDict, join


@dataclass(frozen=True)
class RestartsCheck:
    """The engine restarted ``container`` by its restart policy ``count`` times (an
    expectation: ``3`` or ``{ge: 2}``). ``docker restart`` (a restart step) is not counted."""

    container: str
    count: Expect


SPEC = Obj({
    "container": F(Ref("a container with a restart policy"), True),
    "count": F(ExpectT(COUNT, "restarts by the engine: N or {OP: N}"), True),
}, "the engine's restart count of a container (RestartCount)")


def build(b: Builder, d: PDict, path: str) -> tuple[RestartsCheck, str]:
    c = ref(b, d, "container", path)
    if "count" in d.node.value:
        no_policy(b, c, d.node.value["count"], join(path, "count"))
    count = get(d, "count")
    exp = count if isinstance(count, Expect) and count is not INVALID else Expect("ge", 0)
    return RestartsCheck(c, exp), f"restarts {c} {exp.describe()}"


def judge(body: RestartsCheck, obs: Observation, look: Look) -> Verdict:
    expected = f"{body.container} restarted by the engine {body.count.describe()} time(s)"
    if (v := not_started(obs, body.container, expected)) is not None:
        return v
    n = obs.restart_count(body.container)
    if n is None:
        return Verdict(False, expected, f"the restart count of {body.container} could not be read")
    return Verdict(body.count.holds(n), expected, f"restart count {n}")


KIND = CheckKind("restarts", RestartsCheck, SPEC, build, judge)
