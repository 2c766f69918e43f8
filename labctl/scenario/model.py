"""The typed model of a scenario file: what the loader produces and the runner consumes.

Frozen dataclasses only; no engine import. Every object keeps the position of the
YAML node it came from (``pos``) so later stages can still point at the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
    "mq-send",
    "mq-recv",
    "probe",
    "hold",
    "sysv-private",
    "devshm-fill",
    "devshm-map",
)

IPC_MODES = ("private", "shareable", "none", "host")  # plus "container:<name>"

LINK_PREFIX = "container:"


def linked_container(mode: str | None) -> str | None:
    """NAME when a namespace mode (ipc, network, pid) is ``container:NAME``, else None."""
    return mode[len(LINK_PREFIX):] if mode and mode.startswith(LINK_PREFIX) else None

# --------------------------------------------------------------------------- layouts

# Layouts (how a segment's or file's bytes decode) are labctl.layout.Layout objects:
# built in (conn_stat), an explicit field list, or a struct from C ({header|c, struct}).

# --------------------------------------------------------------------------- expectations

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "match", "approx"]


def _nan(v: object) -> bool:
    return isinstance(v, float) and v != v


def _pair(v: object) -> tuple[float, float]:
    """``approx``'s (value, tolerance)."""
    assert isinstance(v, tuple) and len(v) == 2
    return float(v[0]), float(v[1])


@dataclass(frozen=True)
class Expect:
    """An expectation on one value: ``count: 5`` is eq 5, ``count: {gt: 0}`` is gt 0,
    ``ip: {match: '^127\\.'}`` is a regular-expression search on the text form;
    ``ratio: {approx: 0.1, tol: 1e-9}`` is ``approx`` with value ``(0.1, 1e-9)``."""

    op: Op
    value: object

    def holds(self, observed: object) -> bool:
        """True when ``observed`` satisfies the expectation (None never does, but for ne)."""
        import re

        if self.op == "match":
            return observed is not None and re.search(str(self.value), str(observed)) is not None
        if self.op == "eq":
            return observed == self.value or (_nan(observed) and _nan(self.value))
        if self.op == "ne":
            return not (observed == self.value or (_nan(observed) and _nan(self.value)))
        if observed is None or isinstance(observed, bool) or not isinstance(observed, (int, float)):
            return False
        if self.op == "approx":
            x, tol = _pair(self.value)
            return bool(abs(observed - x) <= tol)
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return False  # validation only builds ordering ops on numbers
        v = self.value
        return {
            "lt": observed < v, "le": observed <= v, "gt": observed > v, "ge": observed >= v,
        }[self.op]

    def describe(self) -> str:
        """Human form for failure messages: ``== 5``, ``> 0``, ``~ /^127/``."""
        if self.op == "approx":
            x, tol = _pair(self.value)
            return f"== {x!r} ± {tol:g}"
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
    options: tuple[str, ...] = ()  # tmpfs only: exec | noexec | mode=OCTAL | uid=N | gid=N


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
    # False when the file has no ``ipc:``: the engine's default then applies (Docker
    # private, Podman shareable); ``ipc`` still says "private", the portable assumption.
    ipc_set: bool = True
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
    # OCI platform (linux/arm64...) it runs on; None: the run's (`run --platform`), else the engine's own
    platform: str | None = None
    # OCI runtime (runc | crun | runsc); None: the run's (`run --runtime`), else the engine's default
    runtime: str | None = None
    # security_opt entries (seccomp=ABSOLUTE_PATH once validated) and /dev/shm mount options
    security_opt: tuple[str, ...] = ()
    shm_options: tuple[str, ...] = ()
    userns: str | None = None  # host | keep-id | auto; None: the engine's default
    umask: int | None = None  # the processes' umask (Podman's --umask); None: the runtime's (022)
    # Lifecycle: the cgroup memory limit (bytes; None = the runner's default, 256m), the
    # memory+swap limit (None = the engine's default), the engine's restart policy
    # (no | on-failure[:N] | always | unless-stopped) and whether it starts with the
    # scenario (false: created, started by a `start` step).
    memory: int | None = None
    memory_swap: int | None = None
    restart: str = "no"
    start: bool = True
    pos: Pos = NOWHERE

    @property
    def links(self) -> dict[str, str]:
        """The containers whose namespaces this one joins: {"ipc"|"network"|"pid": NAME}
        for each of those modes written ``container:NAME`` (in that order)."""
        modes = (("ipc", self.ipc), ("network", self.network), ("pid", self.pid))
        return {key: name for key, mode in modes if (name := linked_container(mode)) is not None}

    @property
    def ipc_donor(self) -> str | None:
        """The container whose IPC namespace this one joins, if ``ipc: container:<name>``."""
        return linked_container(self.ipc)


# --------------------------------------------------------------------------- checks

# The check bodies (ExitCheck, SegmentCheck...) live one module per kind in
# labctl.scenario.kinds, registered in labctl.scenario.kinds.registry.KINDS.

DEFAULT_CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class CheckSpec:
    """One entry of ``checks:``. ``kind`` is the single kind key the entry used.

    Eventually (default): poll until the body holds, failing at ``timeout``.
    ``consistently: D``: the body must hold at every poll for D seconds (negative checks).
    """

    name: str
    kind: str
    body: Any  # the kind's body dataclass (KINDS[kind].model)
    timeout: float = DEFAULT_CHECK_TIMEOUT
    consistently: float | None = None
    pos: Pos = NOWHERE
    engines: tuple[str, ...] = ()  # judged only on these engines; () = every engine


# --------------------------------------------------------------------------- steps

WAIT_FOR = ("exited", "running", "restarts")  # or an event name
DEFAULT_STEP_TIMEOUT = 30.0
DEFAULT_GRACE = 10.0  # restart/stop: SIGTERM, then SIGKILL after this (docker's default)


@dataclass(frozen=True)
class StepSpec:
    """One entry of ``steps:``: an engine action on a container, or a check.
    ``action`` is a key of ``labctl.scenario.actions.action_registry.ACTIONS``, or ``check``.

    restart  ``docker restart -t GRACE``: SIGTERM, SIGKILL after ``grace`` seconds, start again
    kill     ``docker kill -s SIGNAL`` (default SIGKILL)
    stop     ``docker stop -t GRACE``
    start    ``docker start`` (a ``start: false`` container, or one stopped earlier)
    pause    ``docker pause`` (cgroup freezer) / unpause ``docker unpause``
    wait     until the container is ``until`` = exited | running | restarts (the engine's
             restart count reaches ``count``) | an event name (its output carries it)
    check    ``check`` (any check kind) must hold; a failure stops the timeline

    ``timeout``: the step's deadline in seconds (clipped by the scenario's).
    """

    action: str
    name: str
    container: str = ""
    timeout: float = DEFAULT_STEP_TIMEOUT
    grace: float = DEFAULT_GRACE
    signal: str = "SIGKILL"
    until: str | None = None
    count: int | None = None
    check: CheckSpec | None = None
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
    # The timeline: run in order once every container with start: true is up.
    steps: tuple[StepSpec, ...] = ()
    engines: tuple[str, ...] = ()  # runs only on these engines; () = every engine
    # Keys only some engines carry out (security.ENGINE_ONLY: umask): (key, key path, Pos)
    # each; the requirement registry skips the scenario on the other engines.
    engine_only: tuple[tuple[str, str, Pos], ...] = ()

    def all_checks(self) -> list[CheckSpec]:
        """The checks of ``checks:`` and of the check steps, in file order of each."""
        return list(self.checks) + [st.check for st in self.steps if st.check is not None]

    def runs_on(self, engine: str) -> bool:
        """True unless ``engines:`` leaves ``engine`` out."""
        return not self.engines or engine in self.engines

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
