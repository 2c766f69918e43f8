"""The ``go`` step: release a workload that awaits the go (shmlab ``--await-go``) with SIGUSR1.

A step runs only once every container's start has returned, so what the workload does
after the go happens while the engine fully watches it: Docker (containerd) begins to
watch a container's memory cgroup for OOM kills only when the start returns, and a
process killed before that ends with ``OOMKilled`` false. Exports have no go to give:
there the workload does not await it (``EXPORT_DROPS``) and starts at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from labctl.scenario.actions.step_action import CONTAINER, Stage, StepAction
from labctl.scenario.compound import Obj

if TYPE_CHECKING:
    from labctl.scenario.model import StepSpec

# The workload option that makes it await the go; exports drop it from the command line.
AWAIT_ARG = "--await-go"
GO_SIGNAL = "SIGUSR1"

SPEC = Obj({"container": CONTAINER},
           f"release a workload that awaits the go (shmlab {AWAIT_ARG}): {GO_SIGNAL} once every start returned")


def act(stage: Stage, step: StepSpec, deadline: float) -> str:
    """``docker kill -s SIGUSR1``."""
    stage.container(step).kill(GO_SIGNAL)
    return f"sent {GO_SIGNAL}"


def compose(step: StepSpec) -> str:
    return f"(nothing: in this file {step.container} does not await the go, it starts at once)"


def export_args(args: Iterable[str]) -> list[str]:
    """A workload's arguments as an export runs them: without the await of a go nobody gives."""
    return [a for a in args if a != AWAIT_ARG]


ACTION = StepAction("go", SPEC, act, compose, k8s=None)
