"""The typed model of a scenario file: what the loader produces and the runner consumes.

Frozen dataclasses only; no engine import. Every object keeps the position of the
YAML node it came from (``pos``) so later stages can still point at the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --------------------------------------------------------------------------- basics


@dataclass(frozen=True)
class Pos:
    """Where a node starts in its file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Pos("<none>", 0, 0)

# The image every `workload:` container runs; the build tags it by content and
# also as :latest so compose files can name it.
WORKLOAD_IMAGE_REPO = "labctl/shmlab"

# shmlab subcommands a container may name with `workload:`.
WORKLOADS = (
    "sysv-writer",
    "sysv-reader",
    "mmap-writer",
    "mmap-reader",
    "posix-writer",
    "posix-reader",
    "msg-send",
    "msg-recv",
    "sem-counter",
    "probe",
    "hold",
)

IPC_MODES = ("private", "shareable", "none", "host")  # plus "container:<name>"

# --------------------------------------------------------------------------- layouts

FIELD_TYPES = (
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
)  # plus "cstring[N]" and "bytes[N]"


@dataclass(frozen=True)
class Field:
    """One field of a memory layout: ``type`` is an int type above, ``cstring[N]`` or ``bytes[N]``."""

    name: str
    offset: int
    type: str


# The tutorial's struct conn_stat { int count; char ip[64]; } on every Linux ABI we build for.
CONN_STAT = (Field("count", 0, "int32"), Field("ip", 4, "cstring[64]"))
CONN_STAT_SIZE = 68
BUILTIN_LAYOUTS = {"conn_stat": CONN_STAT}


def layout_arg(layout: tuple[Field, ...]) -> str:
    """The probe's --layout argument: ``name:offset:kind:size,...`` (see labctl.layout)."""
    from labctl.layout import explicit, probe_arg

    lay = explicit([(f.name, f.offset, f.type) for f in layout])
    return probe_arg([lay.leaf(f.name, "*") for f in layout])


# --------------------------------------------------------------------------- expectations

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "match"]


@dataclass(frozen=True)
class Expect:
    """An expectation on one value: ``count: 5`` is eq 5, ``count: {gt: 0}`` is gt 0,
    ``ip: {match: '^127\\.'}`` is a regular-expression search on the text form."""

    op: Op
    value: object

    def holds(self, observed: object) -> bool:
        """True when ``observed`` satisfies the expectation (None never does, but for ne)."""
        import re

        if self.op == "match":
            return observed is not None and re.search(str(self.value), str(observed)) is not None
        if self.op == "eq":
            return observed == self.value
        if self.op == "ne":
            return observed != self.value
        if observed is None or isinstance(observed, bool) or not isinstance(observed, (int, float)):
            return False
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return False  # validation only builds ordering ops on numbers
        v = self.value
        return {
            "lt": observed < v, "le": observed <= v, "gt": observed > v, "ge": observed >= v,
        }[self.op]

    def describe(self) -> str:
        """Human form for failure messages: ``== 5``, ``> 0``, ``~ /^127/``."""
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "match": "~"}
        v = f"/{self.value}/" if self.op == "match" else repr(self.value)
        return f"{sym[self.op]} {v}"


# --------------------------------------------------------------------------- volumes

VolumeType = Literal["volume", "tmpfs-volume", "tempdir", "hostdir"]


@dataclass(frozen=True)
class VolumeSpec:
    """A storage the scenario shares between containers.

    volume        a per-run named Docker volume (local driver, disk-backed), removed after the run
    tmpfs-volume  a per-run named volume backed by tmpfs (driver_opts type=tmpfs)
    tempdir       a per-run host directory labctl creates and deletes, bind-mounted
    hostdir       an existing host directory (``path``, relative to the scenario file's folder)
    """

    name: str
    type: VolumeType = "volume"
    path: str | None = None  # hostdir only: as written in the file
    size: int | None = None  # tmpfs-volume only: bytes
    pos: Pos = NOWHERE


@dataclass(frozen=True)
class MountSpec:
    """``volumes: ["data:/data:ro"]`` in a container; ``source`` names a scenario volume.
    ``type: tmpfs`` mounts are per-container tmpfs with no source (``tmpfs: [/scratch]``)."""

    source: str | None
    target: str
    read_only: bool = False
    tmpfs: bool = False
    pos: Pos = NOWHERE


# --------------------------------------------------------------------------- containers

Condition = Literal["started", "exited", "event", "output"]


@dataclass(frozen=True)
class After:
    """Start only once ``container`` reached ``condition``.

    started  the container is running
    exited   the container has exited (any status)
    event    its stdout carried a JSON event whose "event" equals ``value`` (e.g. attached)
    output   a line of its output matched the regular expression ``value``
    """

    container: str
    condition: Condition = "started"
    value: str | None = None
    pos: Pos = NOWHERE


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a scenario. Either ``workload`` (a shmlab subcommand run from the
    workload image, ``args`` appended) or ``image`` with optional ``command``/``entrypoint``."""

    name: str
    workload: str | None = None
    args: tuple[str, ...] = ()
    image: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    ipc: str = "private"  # one of IPC_MODES or "container:<name>"
    mounts: tuple[MountSpec, ...] = ()
    user: str | None = None
    shm_size: int | None = None
    sysctls: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # the user's own; never in io.labctl.
    after: tuple[After, ...] = ()
    timeout: float = 30.0  # the longest it may run; killed (and reported) past it
    # Hardening overrides (defaults are the hardened settings; see runner).
    read_only: bool = True
    network: str = "none"  # "none" | "bridge" | "container:<name>"
    cap_add: tuple[str, ...] = ()
    privileged: bool = False
    pid: str | None = None  # None | "host" | "container:<name>"
    devices: tuple[str, ...] = ()
    pos: Pos = NOWHERE

    @property
    def ipc_donor(self) -> str | None:
        """The container whose namespace this one joins, if ``ipc: container:<name>``."""
        return self.ipc.split(":", 1)[1] if self.ipc.startswith("container:") else None


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class ExitCheck:
    """The container exits with ``code`` (any of them), or is killed by ``signal`` (e.g. SIGBUS)."""

    container: str
    codes: tuple[int, ...] = ()
    signal: str | None = None


@dataclass(frozen=True)
class EventsCheck:
    """Events (JSON lines) of ``container`` whose "event" is ``event`` and whose fields
    satisfy ``where``: at least ``min``, at most ``max`` of them; with ``rising``, that
    field strictly increases across them; ``errno`` is shorthand for where errno == X."""

    container: str
    event: str
    where: tuple[tuple[str, Expect], ...] = ()
    min: int = 1
    max: int | None = None
    rising: str | None = None


@dataclass(frozen=True)
class NamespaceCheck:
    """Containers ``a`` and ``b`` are (``same``) or are not in one IPC namespace.
    ``b`` may be the pseudo-container ``host`` (labctl's own namespace)."""

    a: str
    b: str
    same: bool


@dataclass(frozen=True)
class SegmentCheck:
    """A SysV segment seen from the IPC namespace of container ``in_`` (a probe joins it).

    Selected by ``key`` or by ``shmid_from`` (the shmid in that container's ``attached``
    event). ``present: false`` means no such segment. Other fields are expectations."""

    in_: str
    key: int | None = None
    shmid_from: str | None = None
    present: bool = True
    size: Expect | None = None
    nattch: Expect | None = None
    perms: Expect | None = None  # octal in the file (0666), int here
    dest: bool | None = None  # marked for removal (IPC_RMID while attached)
    layout: tuple[Field, ...] = ()
    fields: tuple[tuple[str, Expect], ...] = ()


@dataclass(frozen=True)
class FileCheck:
    """A file on the storage ``container`` mounts, at ``path`` (a probe mounts the same
    volumes). ``same_as``: the file at ``path`` seen through ``same_as`` has the same
    device and inode. ``fields`` read by ``layout``."""

    container: str
    path: str
    exists: bool = True
    size: Expect | None = None
    same_as: str | None = None
    layout: tuple[Field, ...] = ()
    fields: tuple[tuple[str, Expect], ...] = ()


@dataclass(frozen=True)
class OutputCheck:
    """A line of the container's output matches (``matches``) or no line matches
    (``not_matches``) the regular expression. ``stream``: stdout, stderr or both."""

    container: str
    matches: str | None = None
    not_matches: str | None = None
    stream: Literal["stdout", "stderr", "both"] = "both"


@dataclass(frozen=True)
class RefusedCheck:
    """The engine refused to create or start ``container`` with a reason matching ``matches``
    (e.g. joining a private donor: "non-shareable IPC"). Such a container is expected not to run."""

    container: str
    matches: str


@dataclass(frozen=True)
class CleanupCheck:
    """After teardown nothing labelled with this run's id remains on the engine, and where
    the scenario used ``ipc: host``, the host's SysV segments and /dev/shm are as before."""

    host_ipc: bool = True


CheckBody = (
    ExitCheck | EventsCheck | NamespaceCheck | SegmentCheck | FileCheck | OutputCheck
    | RefusedCheck | CleanupCheck
)

CHECK_KINDS = ("exit", "events", "namespace", "segment", "file", "output", "refused", "cleanup")

DEFAULT_CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class CheckSpec:
    """One entry of ``checks:``. ``kind`` is the single kind key the entry used.

    Eventually (default): poll until the body holds, failing at ``timeout``.
    ``consistently: D``: the body must hold at every poll for D seconds (negative checks).
    """

    name: str
    kind: str
    body: CheckBody
    timeout: float = DEFAULT_CHECK_TIMEOUT
    consistently: float | None = None
    pos: Pos = NOWHERE


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    """A whole scenario file, validated."""

    version: int
    name: str
    description: str
    tags: tuple[str, ...]
    containers: tuple[ContainerSpec, ...]
    checks: tuple[CheckSpec, ...]
    volumes: tuple[VolumeSpec, ...] = ()
    timeout: float = 120.0  # the whole scenario, start to teardown
    file: str = "<none>"
    pos: Pos = NOWHERE
    # Opt-ins the file requires (ipc: host, hostdir, privileged...); the CLI refuses
    # the file unless the user allowed them. Each entry: (flag name, key path, Pos).
    requires: tuple[tuple[str, str, Pos], ...] = field(default_factory=tuple)

    def container(self, name: str) -> ContainerSpec:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    def ipc_owner(self, name: str) -> str:
        """The container whose IPC namespace ``name`` lives in (follows container: links)."""
        seen = set()
        while True:
            donor = self.container(name).ipc_donor
            if donor is None or donor in seen:
                return name
            seen.add(name)
            name = donor
