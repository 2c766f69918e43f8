"""What ``labctl inspect`` found: containers (members), IPC namespaces and warnings.

Plain dataclasses, filled by ``labctl.inspect.gather`` (engine data), ``probe`` (what a
probe saw inside a namespace) and ``pitfalls`` (warnings); read by ``show``. Sizes are
bytes, times seconds; a value the engine or the probe could not give is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


@dataclass
class Memory:
    """A container's memory cgroup: ``usage`` (page cache and shmem included), ``limit``
    (None: none set), ``shmem`` (memory.stat ``shmem``: shm/tmpfs pages charged to it;
    None when unreadable), ``source`` ``cgroup`` (the host's cgroup files) or ``stats``
    (the engine's stats endpoint, which has no shmem figure)."""

    usage: int | None
    limit: int | None
    shmem: int | None
    source: str


@dataclass
class Member:
    """One container, from its ``docker inspect`` document."""

    id: str
    name: str
    state: str  # running, exited, restarting, paused, created...
    pid: int | None  # host pid of its first process while it runs
    ipc_mode: str  # HostConfig.IpcMode as the engine says it: private, shareable, host, none, container:ID
    started_at: str  # State.StartedAt (RFC 3339): which of a donor and a joiner started last
    restart_count: int
    shm_size: int | None  # HostConfig.ShmSize: its own /dev/shm size (a donor's is the namespace's)
    mem_limit: int | None  # HostConfig.Memory, None when unlimited
    labels: dict[str, str] = field(default_factory=dict)
    pod: str | None = None  # Podman pod id
    infra: bool = False  # a Podman pod's infra container (holds the pod's namespaces)
    selected: bool = True  # False: shown because a selected container joined its namespace
    ipcns: str | None = None  # ``ipc:[N]`` read from the host's /proc, where readable
    memory: Memory | None = None

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused") and bool(self.pid)

    @property
    def donor_ref(self) -> str | None:
        """The X of ``container:X`` (an id or a name), else None."""
        return self.ipc_mode.split(":", 1)[1] if self.ipc_mode.startswith("container:") else None

    @property
    def project(self) -> str | None:
        return self.labels.get(COMPOSE_PROJECT)

    @property
    def service(self) -> str | None:
        return self.labels.get(COMPOSE_SERVICE)


@dataclass(frozen=True)
class Warning:
    """A live state that matches a library pitfall: ``pitfall`` (short code), the library
    ``scenarios`` that show and explain it, a one-line ``message``; ``namespace`` (its key)
    and ``container`` (a name) where it applies."""

    pitfall: str
    scenarios: tuple[str, ...]
    message: str
    namespace: str | None = None
    container: str | None = None


@dataclass
class Namespace:
    """One IPC namespace and what it holds.

    ``key``: its identity (``ipc:[N]`` when known, else a label derived from the IPC
    modes); ``kind``: ``shareable`` (a donor others may join), ``pod``, ``private``,
    ``none``, ``host`` or ``stale`` (joiners left in the namespace of a donor that
    restarted); ``donor``: the member holding it (for a stale one, the restarted donor).
    ``via``: how the probe entered (``container:NAME``, ``host``, ``setns pid N``), None
    when not probed; ``skipped``: why not, with the flag that would allow it.
    The object lists are the probe's rows (see ``probe``); ``devshm_fs`` ``{size, used,
    avail}`` of the namespace's /dev/shm."""

    key: str
    kind: str
    members: list[Member]
    donor: Member | None = None
    ident: str | None = None
    via: str | None = None
    skipped: str | None = None
    error: str | None = None
    segments: list[dict] = field(default_factory=list)
    sems: list[dict] = field(default_factory=list)
    queues: list[dict] = field(default_factory=list)
    mqueues: list[dict] = field(default_factory=list)
    devshm_files: list[dict] = field(default_factory=list)
    devshm_fs: dict | None = None
    shm_size: int | None = None  # declared size of its /dev/shm (the donor's ShmSize)
    pid_view: Member | None = None  # the probe saw pids as this member's pid namespace numbers them
    pid_host: bool = False  # ... or as the host numbers them (a privileged probe)
    devshm_note: str | None = None  # why /dev/shm is not shown although the namespace was probed
    warnings: list[Warning] = field(default_factory=list)

    @property
    def probed(self) -> bool:
        return self.via is not None and self.error is None

    def member_by_id(self, cid: str) -> Member | None:
        return next((m for m in self.members if m.id == cid), None)


@dataclass
class Report:
    """One look at the engine: ``namespaces`` (probed or skipped), all ``warnings``,
    ``engine`` (name and version), ``privileged`` (``--allow-privileged`` given),
    ``duration_s`` of the look, ``time`` (UTC, ISO 8601)."""

    engine: str
    namespaces: list[Namespace]
    privileged: bool
    duration_s: float = 0.0
    time: str = ""

    @property
    def warnings(self) -> list[Warning]:
        return [w for ns in self.namespaces for w in ns.warnings]


def human_bytes(n: int | None) -> str:
    """``68`` -> ``68 B``, ``67108864`` -> ``64.0 MiB``; ``-`` for None."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
