"""What every step action is made of: its keys, how a step is read, its engine action, its exports.

An action is declared once, in its own module, as a :class:`StepAction`; ``registry.ACTIONS``
lists them, and the validator, the JSON Schema, the timeline, the compose and Kubernetes
exports and the handout iterate that table. The engine action sees the run only through
:class:`Stage` (the timeline implements it; unit tests fake it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from labctl.errors import LabctlError
from labctl.scenario.compound import F, Obj
from labctl.scenario.shared_specs import Ref
from labctl.scenario.spec import Duration

if TYPE_CHECKING:
    from labctl.runtime.engine import Container
    from labctl.scenario.builder import Builder
    from labctl.scenario.model import StepSpec
    from labctl.scenario.spec import PDict
    from labctl.scenario.yamlload import Node


class StepFailed(LabctlError):
    """An action step could not be carried out (the engine refused it, a wait ran out)."""


class Stage(Protocol):
    """What an engine action may do to the run. The timeline implements it; tests fake it."""

    def container(self, step: StepSpec) -> Container:
        """The started container of ``step.container``; StepFailed when it never ran or is
        still waiting for a ``start`` step."""

    def not_started(self, role: str) -> bool:
        """Whether ``role`` has ``start: false`` and no step started it yet."""

    def start_later(self, role: str) -> str:
        """Create-and-start a ``start: false`` container (``docker start``); returns what was
        observed. ContainerStartError when the engine refuses."""

    def again(self, role: str, c: Container) -> None:
        """``docker start`` an existing container; its next lines are a new run of its output."""

    def clock(self) -> float:
        """Monotonic seconds."""

    def sleep(self, seconds: float) -> None:
        """Back off between engine polls (no event to wait on)."""

    def check_cancel(self) -> None:
        """Raise Interrupted when the run was asked to stop."""


CONTAINER = F(Ref(), True)  # every action names one container of the file
GRACE = F(Duration("SIGTERM, then SIGKILL after this (default 10s)", maximum=3600))

Reading = dict[str, Any]  # StepSpec fields an action's reader sets (name, timeout, grace, signal, until, count)
Read = Callable[["Builder", "PDict", "PDict", str], Reading]
Act = Callable[[Stage, "StepSpec", float], str]


def no_policy(b: Builder, container: Any, node: Node, path: str) -> None:
    """Record an error when ``container`` has no restart policy: its restart count stays 0
    (``wait for: restarts`` and the ``restarts`` check need one)."""
    c = next((c for c in b.containers if c.name == container), None)
    if c is not None and c.restart == "no":
        b.ctx.at(node, path, f"container '{container}' has no restart policy (restart: no), so the engine never "
                             "restarts it and its restart count stays 0; give it restart: on-failure[:N] or always")


def read_plain(b: Builder, d: PDict, step: PDict, path: str) -> Reading:
    """The reader of an action with no keys beyond ``container``."""
    return {}


@dataclass(frozen=True)
class StepAction:
    """One kind of step action; its module declares it and ``registry.ACTIONS`` lists it.

    name     the action key in a ``steps:`` entry (``restart``, ``kill``...)
    spec     its keys as an ``Obj`` (validation and JSON Schema); the Obj's description
             is the action's one-line description (schema, handout)
    read     (Builder, checked mapping, the whole step, key path) -> the StepSpec fields
             it sets (``name`` there is the default step name); records cross-reference
             errors on the Builder with ``b.ctx.at(node, path, msg)``
    act      (Stage, StepSpec, deadline in clock seconds) -> what was observed (the report's
             ``observed``); raises StepFailed (or another LabctlError) when it cannot be done
    compose  StepSpec -> the compose command that does it by hand (a comment in the export)
    k8s      why a Kubernetes manifest cannot express it, or None when the export may leave
             it to the reader (a ``wait`` only observes)
    """

    name: str
    spec: Obj
    act: Act
    compose: Callable[[StepSpec], str]
    read: Read = read_plain
    k8s: str | None = "an action at a point in time; a manifest only declares what runs"

    @property
    def description(self) -> str:
        return self.spec.description


def plain_action(name: str, description: str, call: Callable[[Container], object], observed: str) -> StepAction:
    """An action that is one engine call on the started container and takes no keys but
    ``container``: ``call(container)`` is the call (``docker NAME``, also the compose
    command), ``observed`` what the report says after it."""

    def act(stage: Stage, step: StepSpec, deadline: float) -> str:
        call(stage.container(step))
        return observed

    return StepAction(name, Obj({"container": CONTAINER}, description), act, compose_verb(name))


def compose_verb(verb: str) -> Callable[[StepSpec], str]:
    """``docker compose VERB CONTAINER``: the compose command of an action without options."""
    return lambda step: f"docker compose {verb} {step.container}"
