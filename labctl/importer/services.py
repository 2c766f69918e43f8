"""The narrow input of ``labctl import``: a user's stack, resolved, as the generator needs it.

A reader (Compose file, Kubernetes manifests) produces a :class:`Stack`; the generator
(``labctl.importer.generate``) turns it into a scenario. Nothing here reads a file or
touches an engine. Every value keeps the position of the key it came from, so what the
scenario cannot express is reported as ``FILE:LINE:COL: key: message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from labctl.scenario.model import NOWHERE, Pos

MountKind = Literal["volume", "bind", "tmpfs"]
VolumeKind = Literal["volume", "tmpfs", "bind"]
# How a service waits for another before it starts (compose's depends_on conditions, and
# the events a labctl-made healthcheck waits for):
#   started    the other runs          exited   the other has exited
#   healthy    its healthcheck passes (labctl has no healthchecks: see the generator)
#   event:E    it printed the shmlab event E
Condition = str


@dataclass(frozen=True)
class Note:
    """Something of the file that the scenario does not carry: where, which key, why."""

    pos: Pos
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.key}: {self.message}"


@dataclass(frozen=True)
class Mount:
    """A mount of a service. ``volume``: ``source`` names a :class:`Volume` of the stack;
    ``bind``: ``source`` names one too (a bind volume, made by the reader for the host
    path); ``tmpfs``: no source, a tmpfs of the container's own (``size`` in bytes if set)."""

    kind: MountKind
    source: str | None
    target: str
    read_only: bool = False
    size: int | None = None
    pos: Pos = NOWHERE


@dataclass(frozen=True)
class Volume:
    """A storage several services may mount.

    volume  a named volume (per run in the scenario); ``external``: the file names an
            existing one, which the scenario replaces with a fresh one
    tmpfs   a named volume backed by tmpfs (``size`` bytes if set)
    bind    a host path (``path``, absolute)
    """

    name: str
    kind: VolumeKind = "volume"
    size: int | None = None
    path: str | None = None
    external: bool = False
    pos: Pos = NOWHERE


@dataclass(frozen=True)
class Service:
    """One container to run, as the file declares it (after interpolation and merges).

    ``ipc``: None (the engine's default), ``private``, ``shareable``, ``none``, ``host`` or
    ``service:NAME`` (joins the namespace of service NAME; a Kubernetes pod's containers
    join the pod's holder this way). ``depends``: (service, condition, pos) in file order.
    ``keys``: the position of each key the service wrote (for notes). ``ready_events``:
    the events a healthcheck made by ``labctl compose`` waits for (its marker files).
    """

    name: str
    image: str | None = None
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    ipc: str | None = None
    shm_size: int | None = None
    user: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    restart: str | None = None
    read_only: bool | None = None
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    cap_add: tuple[str, ...] = ()
    privileged: bool = False
    pid: str | None = None
    platform: str | None = None
    depends: tuple[tuple[str, Condition, Pos], ...] = ()
    ready_events: tuple[str, ...] = ()
    healthcheck: bool = False
    holder: bool = False  # made by the reader: a Kubernetes pod's sandbox (pause) container
    keys: dict[str, Pos] = field(default_factory=dict, compare=False)
    pos: Pos = NOWHERE

    def at(self, key: str) -> Pos:
        """The position of ``key`` in this service, else the service's own."""
        return self.keys.get(key, self.pos)


@dataclass(frozen=True)
class Stack:
    """What a reader made of a file: the services to run, their volumes, and the notes on
    what it could not carry. ``kind``: ``compose`` or ``k8s``; ``name``: the project (or
    first pod) name the scenario is named after; ``file``: as the user named it."""

    kind: Literal["compose", "k8s"]
    name: str
    file: str
    services: tuple[Service, ...]
    volumes: tuple[Volume, ...] = ()
    notes: tuple[Note, ...] = ()
    pos: Pos = NOWHERE

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)
