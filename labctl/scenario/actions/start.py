"""The ``start`` step: start a ``start: false`` container, or one that exited or was stopped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.errors import ContainerStartError
from labctl.scenario.actions.step_action import CONTAINER, Stage, StepAction, StepFailed, compose_verb
from labctl.scenario.compound import Obj

if TYPE_CHECKING:
    from labctl.scenario.model import StepSpec

SPEC = Obj({"container": CONTAINER}, "docker start: a start: false container, or one that exited or was stopped")


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker start``: the first start of a ``start: false`` container creates it (the
    engine may refuse: StepFailed with its reason); otherwise its output begins a new run."""
    if stage.not_started(step.container):
        try:
            return stage.start_later(step.container)
        except ContainerStartError as e:
            raise StepFailed(f"the engine refused to start {step.container}: {e.reason}") from e
    stage.again(step.container, stage.container(step))
    return "started"


ACTION = StepAction("start", SPEC, act, compose_verb("start"))
