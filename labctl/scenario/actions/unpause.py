"""The ``unpause`` step: thaw a paused container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, Stage, StepAction
from labctl.scenario.compound import Obj

if TYPE_CHECKING:
    from labctl.scenario.model import StepSpec

FIELDS = Obj({"container": CONTAINER}, "docker unpause")


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker unpause``."""
    stage.container(step).unpause()
    return "unpaused"


def compose(step: StepSpec) -> str:
    return f"docker compose unpause {step.container}"


ACTION = StepAction("unpause", FIELDS, act, compose)
