"""The ``pause`` step: freeze every process of the container (the cgroup freezer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, Stage, StepAction
from labctl.scenario.compound import Obj

if TYPE_CHECKING:
    from labctl.scenario.model import StepSpec

FIELDS = Obj({"container": CONTAINER}, "docker pause: freeze every process (cgroup freezer)")


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker pause``."""
    stage.container(step).pause()
    return "paused"


def compose(step: StepSpec) -> str:
    return f"docker compose pause {step.container}"


ACTION = StepAction("pause", FIELDS, act, compose)
