"""The engine interface: what labctl needs from a container engine, and nothing else.

``Engine`` and ``Container`` are abstract; ``docker_engine`` implements them on the
Docker SDK, ``podman_engine`` on the same SDK against Podman's Docker-compatible API
(hiding where Podman differs). ``Engine.connect(name)`` picks one by its name in
``labctl.runtime.lookup``. Nothing here imports an engine SDK.

Contract of every implementation:

* Errors: only ``labctl.errors`` types leave it. An unreachable engine or an operation
  labctl cannot do without raises ``EngineError``; the engine refusing one scenario
  container raises ``ContainerStartError`` with the engine's own words; a container
  removed behind labctl's back raises ``ContainerGone``.
* Labels: every object it creates carries the labels it is given, which come from
  ``labctl.runtime.labels.labels_for``; ``find``/``remove_labelled`` select by them.
* Output: a ``Container``'s stdout/stderr are collected into ``container.output`` from
  before its start (no first line lost) until it exits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from labctl.errors import EngineError, LabctlError
from labctl.runtime.logs import ExitStatus, Output


class ContainerGone(LabctlError):
    """A container labctl started disappeared (removed behind labctl's back)."""


@dataclass
class RunSpec:
    """Everything needed to create one container (the runner fills it from a ContainerSpec).

    Namespace modes are the engine's words: ``ipc_mode`` ``private``/``shareable``/
    ``host``/``container:NAME``, ``network_mode`` ``none``/``host``/``container:NAME``/a
    network name. ``mounts``: (type ``volume``|``bind``, source, target, read-only).
    ``mem_limit`` in Docker's notation (``256m``), ``shm_size`` in bytes. ``platform``:
    the OCI platform (``linux/arm64``) the image must be for, None = the engine's own.
    ``init``: run the engine's init as PID 1 (``docker run --init``)."""

    name: str
    image: str
    labels: dict[str, str]
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    ipc_mode: str | None = None
    network_mode: str | None = "none"
    user: str | None = None
    read_only: bool = True
    cap_drop: list[str] = field(default_factory=lambda: ["ALL"])
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=lambda: ["no-new-privileges:true"])
    pids_limit: int | None = 64
    mem_limit: str | None = "256m"
    shm_size: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, str, str, bool]] = field(default_factory=list)  # (type, source, target, ro)
    tmpfs: dict[str, str] = field(default_factory=dict)
    privileged: bool = False
    pid_mode: str | None = None
    devices: list[str] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    platform: str | None = None
    init: bool = False  # the engine's init (docker --init) as PID 1, the command its child
    # The engine's restart policy (``no``, ``on-failure[:N]``, ``always``, ``unless-stopped``)
    # and the memory+swap limit in bytes (None: the engine's default, twice mem_limit).
    restart_policy: str = "no"
    memswap_limit: int | None = None
    # Podman: create the container inside this pod (it shares the pod's IPC namespace);
    # the only way into a pod's namespaces without privileges. Other engines refuse it.
    pod: str | None = None
    # The OCI runtime (``runc``, ``crun``, ``runsc``: ``docker run --runtime``); None: the engine's default.
    runtime: str | None = None
    # A seccomp profile file (JSON, absolute path): Docker takes its content, Podman its path.
    seccomp_profile: str | None = None
    userns_mode: str | None = None  # host | keep-id | auto (Podman); None: the engine's default
    umask: str | None = None  # octal (``0077``), Podman's --umask; None: the runtime's (022). Docker has none


@dataclass(frozen=True)
class Privileges:
    """What an engine may do on its host for a container (``Engine.privileges``).

    ``rootless``: the engine runs as a non-root user, every container inside a user namespace
    of that user (container root is that user on the host, and holds capabilities only over
    namespaces the engine created). ``cgroup``: the host's cgroup version, ``v1`` or ``v2``
    (``""``: unknown). ``controllers``: the cgroup controllers through which the engine can
    limit or freeze a container (``memory``, ``pids``, ``freezer``...); None: all of them, as
    for a rootful engine. ``user``: the user the engine runs as."""

    rootless: bool = False
    cgroup: str = ""
    controllers: frozenset[str] | None = None
    user: str = "root"


class Container(ABC):
    """A container labctl created and started, its output being collected.

    ``role``: the scenario's name for it (``writer``, ``probe-writer``...); ``name``/``id``:
    the engine's. ``output`` fills while it runs and is closed when its stream ends."""

    role: str
    name: str
    id: str
    output: Output

    @abstractmethod
    def start(self) -> None:
        """Start the created container (``docker start``), or start it again after it
        exited or was stopped: the exit status is forgotten and ``output`` reopens and
        keeps collecting into the same lists (a role's output spans its runs). The
        engine's refusal raises ContainerStartError; a silent engine EngineError."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> ExitStatus | None:
        """``docker stop -t TIMEOUT``: SIGTERM (the image's stop signal), SIGKILL after
        ``timeout`` seconds; returns the exit status. ContainerGone, else EngineError."""

    @abstractmethod
    def pause(self) -> None:
        """``docker pause``: freeze every process (cgroup freezer); IPC objects stay
        attached. ContainerGone, else EngineError (e.g. the container is not running)."""

    @abstractmethod
    def unpause(self) -> None:
        """``docker unpause``. ContainerGone, else EngineError."""

    @abstractmethod
    def remove(self) -> None:
        """``docker rm -f -v``: kill and remove the container and its anonymous volumes.
        Best effort: a container already gone is not an error."""

    @abstractmethod
    def logs(self) -> tuple[str, str]:
        """(stdout, stderr) as the engine stored them over all runs (``docker logs``);
        ``output`` is the live view, this the engine's record. ContainerGone, else EngineError."""

    @abstractmethod
    def wait_exit(self, timeout: float) -> ExitStatus | None:
        """Block until the container exits (``docker wait``) or ``timeout`` seconds pass;
        the exit status (code, OOMKilled, engine error) or None if it still runs.
        ContainerGone if it was removed; EngineError for other engine failures."""

    @abstractmethod
    def poll_exit(self) -> ExitStatus | None:
        """The exit status if the container has exited, else None (one ``inspect``)."""

    @abstractmethod
    def state(self) -> dict:
        """The engine's ``State`` of the container (``docker inspect``: Status, Pid,
        ExitCode, OOMKilled, Error...). ContainerGone if removed, else EngineError."""

    def pid(self) -> int | None:
        """The host pid of the container's first process while it runs, else None."""
        pid = self.state().get("Pid") or 0
        return int(pid) or None

    @abstractmethod
    def exec(self, cmd: list[str], timeout: float = 30.0) -> tuple[int, str]:
        """Run ``cmd`` inside the container (``docker exec``, no shell); (exit code,
        stdout+stderr text). ContainerGone if removed, else EngineError, also when the
        engine has not answered within ``timeout`` seconds (a hung call is given up,
        not waited for: the error names it)."""

    @abstractmethod
    def kill(self, signal: str = "SIGKILL") -> None:
        """Send ``signal`` to the container's first process (``docker kill``). Best
        effort: a container that already exited or is gone is not an error."""

    @abstractmethod
    def restart_count(self) -> int:
        """How many times the engine restarted the container by its restart policy
        (``docker inspect`` RestartCount; ``docker restart`` does not count).
        ContainerGone, else EngineError."""

    @abstractmethod
    def memory_usage(self) -> int | None:
        """The container's memory cgroup usage in bytes (``docker stats``, one sample:
        page cache and shmem included), or None when it does not run. EngineError."""

    @abstractmethod
    def ip_address(self, network: str) -> str | None:
        """The IPv4 address of the running container on ``network`` (``docker inspect``
        NetworkSettings.Networks), or None if it is not attached. EngineError."""


class Engine(ABC):
    """A connection to one container engine. Create with ``Engine.connect()``.

    ``name``: ``docker`` or ``podman`` (``labctl.runtime.lookup``); ``address``: where the engine
    listens (for messages)."""

    name: str = "docker"
    address: str

    @classmethod
    def connect(cls, name: str | None = None, timeout: float = 10.0) -> "Engine":
        """Connect to engine ``name`` (``docker``/``podman``; None: ``lookup.default_engine()``)
        and ping it (``/_ping``). Docker: ``$DOCKER_HOST`` or /var/run/docker.sock (with no
        name, a ``$DOCKER_HOST`` that is Podman's compatible socket gives the Podman engine);
        Podman: ``$CONTAINER_HOST``, else its rootful or rootless API socket. Raises
        EngineError (exit 3) naming the address and what to start."""
        from labctl.runtime import lookup
        from labctl.errors import EngineError
        from labctl.runtime.docker_engine import DockerEngine
        from labctl.runtime.podman_engine import PodmanEngine

        if name == lookup.PODMAN or (name is None and lookup.default_engine() == lookup.PODMAN):
            return PodmanEngine.connect(timeout)
        if name not in (None, lookup.DOCKER):
            raise EngineError(f"unknown engine {name!r} (expected one of {', '.join(lookup.ENGINE_NAMES)})")
        engine = DockerEngine.connect(timeout)
        if engine.serves_podman():
            if name == lookup.DOCKER:
                engine.close()
                raise EngineError(f"DOCKER_HOST={engine.address} is Podman's API service, not Docker: "
                                  "use --engine podman (LABCTL_ENGINE=podman), or unset DOCKER_HOST")
            return PodmanEngine(engine.client, engine.address)
        return engine

    def describe(self) -> str:
        """``NAME VERSION`` for reports (``podman 4.3.1``); the version ``?`` if unreadable."""
        try:
            return f"{self.name} {self.version()}"
        except LabctlError:
            return f"{self.name} ?"

    @abstractmethod
    def close(self) -> None:
        """Close the connection (never raises)."""

    # ---- engine facts

    @abstractmethod
    def architecture(self) -> str:
        """The engine's CPU architecture as uname says it: ``x86_64`` or ``aarch64``
        (``docker info``). EngineError."""

    @abstractmethod
    def version(self) -> str:
        """The engine's version string (``docker version``). EngineError."""

    def privileges(self) -> Privileges:
        """Whether the engine is rootless and which cgroup controllers it can use
        (``docker info``: SecurityOptions, CgroupVersion; Podman's libpod info). Default:
        rootful, every controller. EngineError."""
        return Privileges()

    def oci_runtimes(self) -> dict[str, str]:
        """OCI runtimes this engine can give a container (``RunSpec.runtime``): name -> binary
        path (``docker info`` Runtimes; see ``labctl.runtime.oci``). Default: runc only."""
        return {"runc": "runc"}

    # ---- images

    @abstractmethod
    def image_exists(self, ref: str) -> bool:
        """True if the engine has image ``ref`` (``docker image inspect``). EngineError."""

    @abstractmethod
    def image_size(self, ref: str) -> int:
        """Size in bytes of image ``ref`` (``docker image inspect``). EngineError."""

    @abstractmethod
    def build_image(self, context: bytes, tag: str, labels: dict[str, str], *, nocache: bool = False,
                    platform: str | None = None) -> str:
        """``docker build [--platform P]`` from an in-memory tar ``context`` (Dockerfile at
        its root), tagged ``tag`` and labelled ``labels``; returns the image id. ``nocache``:
        build every step anew. ``platform`` (``linux/arm64``) stamps the image's
        os/architecture/variant. Raises BuildError with the builder's log tail."""

    @abstractmethod
    def tag_image(self, ref: str, repo: str, tag: str) -> None:
        """``docker tag REF REPO:TAG``. EngineError."""

    @abstractmethod
    def prune_images(self, label: str, keep: str, older_than_s: float) -> list[str]:
        """Remove images carrying ``label`` created more than ``older_than_s`` seconds ago,
        except ``keep``; returns what went. Best effort, never raises."""

    # ---- creation: everything labctl creates is labelled by labels_for()

    @abstractmethod
    def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None) -> str:
        """``docker volume create`` (local driver, ``driver_opts`` e.g. a tmpfs); returns
        the name. EngineError."""

    @abstractmethod
    def create_network(self, name: str, labels: dict[str, str]) -> str:
        """``docker network create --driver bridge``; returns the name. Containers join it
        with ``RunSpec(network_mode=NAME)``. EngineError; LabctlError if ``labels`` do not
        come from ``labels_for``."""

    @abstractmethod
    def network_gateway(self, name: str) -> str | None:
        """The host-side (gateway) IPv4 address of bridge network ``name`` (``docker
        network inspect``), or None. EngineError."""

    @abstractmethod
    def start_container(self, spec: RunSpec, role: str, output: Output | None = None, *,
                        start: bool = True) -> Container:
        """``docker create`` + attach + ``docker start`` (``start=False``: created and
        attached only; ``Container.start()`` later, as for ``start: false``). The engine's refusal (bad ipc
        donor, unknown sysctl, missing image...) raises ContainerStartError with its
        words; the container, if created, is left for label-based teardown. ``output``
        (with its watchers attached beforehand) receives the container's output; a fresh
        ``Output`` if None."""

    # ---- inventory and teardown, by label

    @abstractmethod
    def find(self, labels: dict[str, str]) -> dict[str, list[str]]:
        """Names of containers (any state), volumes and networks carrying all ``labels``
        (``docker ps -a`` / ``volume ls`` / ``network ls`` with label filters):
        ``{"containers": [...], "volumes": [...], "networks": [...]}``. EngineError."""

    @abstractmethod
    def run_ids(self) -> dict[str, dict[str, str]]:
        """Run ids of every managed object on the engine, each with the labels of one of
        its objects (owner pid/host: stale-run detection). EngineError."""

    # ---- looking at containers labctl did not create (labctl inspect)

    def survey(self, filters: dict[str, list[str]], *, all: bool = False) -> list[dict]:
        """The inspect documents (``docker inspect``: Id, Name, Config.Labels,
        HostConfig.IpcMode/ShmSize/Memory, State.Pid/StartedAt...) of the containers
        ``docker ps [--all] --filter`` lists for ``filters`` (``{"label": ["K=V"], "name":
        [...]}``), fetched in parallel. EngineError."""
        raise EngineError(f"{self.name}: listing containers is not supported")

    def inspect_container(self, ref: str) -> dict | None:
        """``docker inspect REF`` (id, id prefix or name), None when there is none. EngineError."""
        raise EngineError(f"{self.name}: inspecting containers is not supported")

    def memory_stats(self, ref: str) -> dict | None:
        """One ``docker stats`` sample's ``memory_stats`` (``usage``, ``limit``, ``stats``)
        of a running container; None when gone or not running. EngineError."""
        raise EngineError(f"{self.name}: container stats are not supported")

    def run_to_exit(self, spec: RunSpec, timeout: float) -> tuple[int | None, str]:
        """Create and start ``spec`` unattached, wait up to ``timeout`` s, read its logs,
        remove it (``docker run --rm``); (exit code or None if still running, stdout +
        stderr). ContainerStartError with the engine's refusal, else EngineError."""
        raise EngineError(f"{self.name}: one-shot containers are not supported")

    @abstractmethod
    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        """Force-remove every container (with its anonymous volumes), then volume and
        network carrying ``labels``; (removed names, errors). Best effort per object:
        never raises for one object, so one failure does not hide the rest."""
