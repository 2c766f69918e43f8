"""The ``kill`` step: send one signal (default SIGKILL) to the container's first process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, Reading, Stage, StepAction
from labctl.scenario.builder import get
from labctl.scenario.compound import F, Obj
from labctl.scenario.spec import Str

if TYPE_CHECKING:
    from labctl.scenario.builder import Builder
    from labctl.scenario.model import StepSpec
    from labctl.scenario.spec import PDict

SIGNAL_RE = r"^SIG[A-Z0-9]+$"

SPEC = Obj({"container": CONTAINER,
            "signal": F(Str("a signal name (default SIGKILL)", pattern=SIGNAL_RE, what="signal",
                            hint="expected a name such as SIGKILL or SIGTERM"))},
           "docker kill: send a signal to the container's first process")


def read(b: Builder, d: PDict, step: PDict, path: str) -> Reading:
    signal = get(d, "signal", "SIGKILL")
    return {"signal": signal, "name": f"kill {get(d, 'container', '')} {signal}"}


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker kill -s SIGNAL``."""
    stage.container(step).kill(step.signal)
    return f"sent {step.signal}"


def compose(step: StepSpec) -> str:
    return f"docker compose kill -s {step.signal} {step.container}"


ACTION = StepAction("kill", SPEC, act, compose, read)
