"""The ``restart`` step: stop the container (SIGTERM, SIGKILL after the grace), then start it again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, GRACE, Reading, Stage, StepAction
from labctl.scenario.builder import get
from labctl.scenario.compound import Obj
from labctl.scenario.model import DEFAULT_GRACE

if TYPE_CHECKING:
    from labctl.scenario.builder import Builder
    from labctl.scenario.model import StepSpec
    from labctl.scenario.spec import PDict

SPEC = Obj({"container": CONTAINER, "timeout": GRACE},
           "docker restart: stop (SIGTERM, SIGKILL after timeout), then start again")


def read(b: Builder, d: PDict, step: PDict, path: str) -> Reading:
    """``timeout`` in the action is the stop grace (seconds), not the step's deadline."""
    return {"grace": get(d, "timeout", DEFAULT_GRACE)}


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker restart -t GRACE``, done as stop then start so the output starts a new run."""
    c = stage.container(step)
    c.stop(step.grace)
    stage.again(step.container, c)
    return "stopped and started again"


def compose(step: StepSpec) -> str:
    return f"docker compose restart -t {step.grace:g} {step.container}"


ACTION = StepAction("restart", SPEC, act, compose, read)
