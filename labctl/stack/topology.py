"""The IPC topology model: what a Compose project or a set of pod specs declares about
shared memory, independent of the file format it came from.

Every value that came from a file keeps where it was written (:class:`Loc`), so a rule can
point at the exact key. Sizes are bytes; ``None`` means "not declared" (the engine's
default applies, see :data:`DEFAULT_DEVSHM`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

DEFAULT_DEVSHM = 64 * 1024 * 1024  # Docker's, Podman's and a Kubernetes pod's /dev/shm

T = TypeVar("T")


@dataclass(frozen=True)
class Loc:
    """Where a value is written: 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class V(Generic[T]):
    """A declared value and where it was declared."""

    value: T
    loc: Loc


@dataclass
class Mount:
    """A filesystem mounted into a container.

    ``kind``: ``bind`` (a host path), ``volume`` (a named volume or a volume several pod
    containers mount), ``tmpfs`` (a tmpfs private to this container), ``emptydir`` (a pod
    emptyDir), ``hostpath``, ``other``. ``source``: the host path, volume or emptyDir name.
    ``medium``: ``Memory`` for a RAM-backed emptyDir. ``size``: bytes or None (unbounded).
    ``file_hint``: the source is a single file (it exists as a file, a hostPath of type
    File, or a ``subPath`` that names a file).
    """

    target: V[str]
    kind: str
    source: str | None = None
    medium: str | None = None
    size: int | None = None
    read_only: bool = False
    file_hint: str | None = None
    loc: Loc | None = None
    size_loc: Loc | None = None


@dataclass
class Container:
    """One container (a Compose service, or a container of a pod template).

    ``group``: the pod (``Deployment/web``) or the Compose project the container belongs
    to. ``ipc``: the IPC mode as declared (``private``, ``shareable``, ``host``, ``none``,
    ``service:NAME``, ``container:NAME``, ``pod``), None when left to the engine's default.
    ``namespace``: the id of the IPC namespace it ends up in (see :class:`Namespace`).
    ``memory``: the memory limit in bytes. ``uid``/``gid``: numeric ids when declared,
    ``groups``: supplementary gids (group_add, supplementalGroups, fsGroup).
    ``refs``: the words of its command, entrypoint, args and environment values (what the
    rules search for paths). ``shm_use``: bytes the container declares it writes into
    /dev/shm (a labctl workload's ``--size``, or the ``io.labctl.shm-use`` label).
    """

    name: str
    source: str  # "compose" or "k8s"
    group: str
    loc: Loc
    ipc: V[str] | None = None
    shm_size: V[int] | None = None
    memory: V[int] | None = None
    user: V[str] | None = None
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    restart: V[str] | None = None
    runtime: V[str] | None = None
    sysctls: list[tuple[V[str], str]] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    shm_use: V[int] | None = None
    namespace: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def joins(self) -> str | None:
        """The name of the container whose IPC namespace this one joins (Compose/Docker)."""
        if self.ipc is None:
            return None
        for prefix in ("service:", "container:"):
            if self.ipc.value.startswith(prefix):
                return self.ipc.value[len(prefix):]
        return None

    def devshm_mount(self) -> Mount | None:
        """The mount at /dev/shm, if the file mounts one."""
        return next((m for m in self.mounts if m.target.value.rstrip("/") == "/dev/shm"), None)


@dataclass
class Namespace:
    """An IPC namespace: its members share SysV shm, semaphores, message queues, POSIX
    mqueues and one /dev/shm.

    ``kind``: ``private``, ``shareable`` (a donor others may join), ``pod`` (a pod's
    sandbox holds it), ``host``, ``none``. ``holder``: the donor container (Compose) or
    None for a pod. ``devshm``: the /dev/shm size in bytes (None: unbounded, e.g. a Memory
    emptyDir without sizeLimit), ``devshm_loc``: where that size is set (None: default).
    """

    id: str
    kind: str
    group: str
    holder: str | None
    members: list[Container] = field(default_factory=list)
    devshm: int | None = DEFAULT_DEVSHM
    devshm_loc: Loc | None = None
    runtime_class: V[str] | None = None
    host_ipc: V[bool] | None = None
    sysctls: list[tuple[V[str], str]] = field(default_factory=list)
    restart_policy: V[str] | None = None
    loc: Loc | None = None


@dataclass
class Topology:
    """What one input declares: its containers and the IPC namespaces they form.

    ``inputs``: the files read (in order). ``skipped``: objects seen and not inspected
    (Services, ConfigMaps, custom resources), as (location, "Kind/name").
    ``suppressed``: (file, line) -> rule ids of ``# labctl: ignore=RULE`` comments.
    """

    inputs: list[str] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    skipped: list[tuple[Loc, str]] = field(default_factory=list)
    suppressed: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def namespace_of(self, c: Container) -> Namespace:
        return next(n for n in self.namespaces if n.id == c.namespace)

    def by_name(self, group: str, name: str) -> Container | None:
        return next((c for c in self.containers if c.group == group and c.name == name), None)


_COMPOSE_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_POW = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def compose_bytes(value: Any) -> int:
    """Docker/Compose sizes: ``64m``, ``1g``, ``1gb``, ``512k``, a plain number of bytes
    (binary multiples, as the engine reads ``shm_size`` and ``mem_limit``). ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 64m, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = _COMPOSE_SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected a size such as 64m or 1g, got {value!r}")
    return int(float(m.group(1)) * _POW[m.group(2).lower()])


_QUANTITY = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|m)?\s*$")
_QFACTOR = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
            "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 0.001}


def k8s_bytes(value: Any) -> int:
    """A Kubernetes quantity (``64Mi``, ``1G``, ``128974848``, ``1e9``) in bytes. ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a quantity such as 64Mi, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"expected a quantity such as 64Mi or 1Gi, got {value!r}")
    return int(float(m.group(1)) * _QFACTOR[m.group(2)])


def human(n: int | None) -> str:
    """Bytes for messages: ``64 MiB``; None: ``unbounded``."""
    if n is None:
        return "unbounded"
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f and n % (f // 16 or 1) == 0:
            v = n / f
            return f"{v:g} {unit}"
    return f"{n} B"
