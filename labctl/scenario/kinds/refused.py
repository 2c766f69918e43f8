"""``refused``: the engine refused to create or start a container, for a matching reason."""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import Ref
from labctl.scenario.compound import F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, ref
from labctl.scenario.spec import PDict, Regex


@dataclass(frozen=True)
class RefusedCheck:
    """The engine refused to create or start ``container`` with a reason matching ``matches``
    (e.g. joining a private donor: "non-shareable IPC"). Such a container is expected not to run."""

    container: str
    matches: str


SPEC = Obj({
    "container": F(Ref(), True),
    "matches": F(Regex("the engine's reason matches"), True),
}, "the engine refused to start the container")


def build(b: Builder, d: PDict, path: str) -> tuple[RefusedCheck, str]:
    c = ref(b, d, "container", path)
    return RefusedCheck(c, get(d, "matches", "")), f"refused {c}"


def judge(body: RefusedCheck, obs: Observation, look: Look) -> Verdict:
    reason = obs.refusal(body.container)
    expected = f"the engine refuses to start {body.container} (/{body.matches}/)"
    if reason is None:
        started = obs.output(body.container) is not None
        return Verdict(False, expected, f"{body.container} {'started' if started else 'was not attempted'}", final=True)
    return Verdict(re.search(body.matches, reason) is not None, expected, f"refused: {reason}", final=True)


KIND = CheckKind("refused", RefusedCheck, SPEC, build, judge)
