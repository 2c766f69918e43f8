"""The ``stop`` step: SIGTERM to the container's first process, SIGKILL after the grace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, GRACE, Stage, StepAction
from labctl.scenario.actions.restart import read
from labctl.scenario.compound import Obj
from labctl.scenario.kinds.base import describe_exit

if TYPE_CHECKING:
    from labctl.scenario.model import StepSpec

SPEC = Obj({"container": CONTAINER, "timeout": GRACE}, "docker stop: SIGTERM, then SIGKILL after timeout")


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker stop -t GRACE``; observed: how the container ended, when the engine says."""
    status = stage.container(step).stop(step.grace)
    return f"stopped ({describe_exit(status)})" if status else "stopped"


def compose(step: StepSpec) -> str:
    return f"docker compose stop -t {step.grace:g} {step.container}"


ACTION = StepAction("stop", SPEC, act, compose, read)
