"""The engine boundary: the only module of labctl that imports ``docker``.

Every engine call goes through ``Engine``; every foreign error (``docker.errors.*``,
``requests.exceptions.*``) is translated here, once, into ``labctl.errors``. Every
object labctl creates gets its labels from ``labels_for`` and nowhere else.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import docker
import docker.errors
import requests.exceptions

from labctl.errors import ContainerStartError, EngineError, LabctlError
from labctl.output import ExitStatus, Output

MANAGED = "io.labctl.managed"
RUN_ID = "io.labctl.run-id"
SCENARIO = "io.labctl.scenario"
ROLE = "io.labctl.role"
OWNER_PID = "io.labctl.pid"  # the labctl process that owns the run (stale-run detection)
OWNER_HOST = "io.labctl.host"
KEPT = "io.labctl.keep"  # objects of a `run --keep`: only `labctl clean` removes them
LABEL_PREFIX = "io.labctl."

_TRANSIENT = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
# Workload builds younger than this are never pruned: 84 kB each, and a second checkout
# building other sources on the same engine must not lose its image mid-run.
PRUNE_AFTER_S = 7 * 24 * 3600.0


def _created_epoch(created: str) -> float:
    """The engine's RFC 3339 ``Created`` (nanosecond precision) as epoch seconds; 0 if unreadable."""
    from datetime import datetime

    try:
        head = created.split(".")[0].rstrip("Z")
        return datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return 0.0


class ContainerGone(LabctlError):
    """A container labctl started disappeared (removed behind labctl's back)."""


def labels_for(run_id: str, scenario: str, role: str, user_labels: dict[str, str] | None = None, *,
               keep: bool = False) -> dict[str, str]:
    """The labels of every object labctl creates. User labels in ``io.labctl.`` are refused.
    ``keep``: left on purpose (``run --keep``), so not a dead run's debris for ``remove_stale``."""
    labels = dict(user_labels or {})
    for key in labels:
        if key.startswith(LABEL_PREFIX):
            raise LabctlError(f"label {key!r}: the io.labctl. prefix is reserved for labctl")
    labels.update({
        MANAGED: "true",
        RUN_ID: run_id,
        SCENARIO: scenario,
        ROLE: role,
        OWNER_PID: str(os.getpid()),
        OWNER_HOST: os.uname().nodename,
    })
    if keep:
        labels[KEPT] = "true"
    return labels


# --------------------------------------------------------------------------- engine


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _explain(err: Exception) -> str:
    if isinstance(err, docker.errors.APIError):
        text = err.explanation or str(err)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return str(text).strip()
    return str(err).strip() or type(err).__name__


@dataclass
class RunSpec:
    """Everything needed to create one container (the runner fills it from a ContainerSpec)."""

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


class Container:
    """A running (or exited) container labctl created, with its output being collected."""

    def __init__(self, engine: "Engine", obj: "docker.models.containers.Container", role: str) -> None:
        """Wrap a *created* container and attach to its output; ``start()`` it afterwards.
        Attaching before the start (as ``docker run`` does) is what guarantees the first
        lines are not lost."""
        self._engine = engine
        self._obj = obj
        self.role = role
        self.name: str = obj.name
        self.id: str = obj.id
        self.output = Output()
        self._exit: ExitStatus | None = None
        self._exit_lock = threading.Lock()
        try:
            # The POST /attach happens here, synchronously; iterating reads the stream.
            self._stream = engine.api.attach(self.id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        except docker.errors.DockerException as e:
            raise EngineError(f"attaching to container {role!r}: {_explain(e)}") from e
        self._reader = threading.Thread(target=self._pump, name=f"logs-{self.name}", daemon=True)
        self._reader.start()

    def start(self) -> None:
        """``docker start``; the engine's refusal raises ContainerStartError."""
        try:
            self._obj.start()
        except docker.errors.APIError as e:
            raise ContainerStartError(self.role, _explain(e)) from e
        except _TRANSIENT as e:
            raise EngineError(f"starting container {self.role!r}: the engine stopped answering") from e

    def _pump(self) -> None:
        try:
            for out, err in self._stream:
                if out:
                    self.output.feed("stdout", out)
                if err:
                    self.output.feed("stderr", err)
        except Exception:  # noqa: BLE001 - the stream dies with the container; state tells why
            pass
        finally:
            self.output.close()

    def wait_exit(self, timeout: float) -> ExitStatus | None:
        """Block until the container exits (Docker ``wait``) or ``timeout`` seconds pass."""
        if self._exit is not None:
            return self._exit
        if timeout <= 0:
            return self.poll_exit()
        try:
            res = self._obj.wait(timeout=timeout)
        except _TRANSIENT:
            return self.poll_exit()
        except docker.errors.NotFound as e:
            raise ContainerGone(f"container {self.role!r} ({self.name}) was removed behind labctl's back") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"waiting for container {self.role!r}: {_explain(e)}") from e
        return self._record_exit(res.get("StatusCode", -1), (res.get("Error") or {}).get("Message", "") if isinstance(res.get("Error"), dict) else "")

    def _record_exit(self, code: int, error: str = "") -> ExitStatus:
        with self._exit_lock:
            if self._exit is None:
                oom = False
                try:
                    self._obj.reload()
                    oom = bool(self._obj.attrs["State"].get("OOMKilled"))
                    removing = self._obj.attrs["State"].get("Status") == "removing"
                except docker.errors.NotFound:
                    removing = True
                except docker.errors.DockerException:
                    removing = False
                if removing:
                    # `docker rm -f` kills first, so the wait saw an exit (137); say what
                    # really happened instead of "killed by SIGKILL".
                    raise ContainerGone(f"container {self.role!r} ({self.name}) was removed behind labctl's back "
                                        f"(docker rm; it ended with exit {code})")
                self._exit = ExitStatus(code=code, oom_killed=oom, error=error)
                # The log stream closes right after exit; give the pump a bounded moment
                # so checks see the final lines.
                self._reader.join(timeout=2.0)
            return self._exit

    def poll_exit(self) -> ExitStatus | None:
        """The exit status if the container has exited, else None (one inspect)."""
        if self._exit is not None:
            return self._exit
        state = self.state()
        if state.get("Status") in ("exited", "dead"):
            return self._record_exit(int(state.get("ExitCode", -1)), state.get("Error", ""))
        return None

    def state(self) -> dict:
        """Docker inspect's ``State`` of the container."""
        try:
            self._obj.reload()
        except docker.errors.NotFound as e:
            raise ContainerGone(f"container {self.role!r} ({self.name}) was removed behind labctl's back") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"inspecting container {self.role!r}: {_explain(e)}") from e
        return dict(self._obj.attrs.get("State", {}))

    def pid(self) -> int | None:
        pid = self.state().get("Pid") or 0
        return int(pid) or None

    def exec(self, cmd: list[str]) -> tuple[int, str]:
        """``docker exec`` of ``cmd`` (no shell); returns (exit code, stdout+stderr text)."""
        try:
            res = self._obj.exec_run(cmd, stdout=True, stderr=True)
        except docker.errors.NotFound as e:
            raise ContainerGone(f"container {self.role!r} ({self.name}) is gone") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"exec in container {self.role!r}: {_explain(e)}") from e
        return int(res.exit_code if res.exit_code is not None else -1), (res.output or b"").decode("utf-8", errors="replace")

    def kill(self, signal: str = "SIGKILL") -> None:
        try:
            self._obj.kill(signal=signal)
        except docker.errors.DockerException:
            pass


# --------------------------------------------------------------------------- engine


class Engine:
    """A connection to the Docker engine. Create with ``Engine.connect()``."""

    def __init__(self, client: "docker.DockerClient") -> None:
        self.client = client
        self.api = client.api
        self.address = _engine_address()
        self._arch: str | None = None

    @classmethod
    def connect(cls, timeout: float = 10.0) -> "Engine":
        """Connect and ping (``docker.from_env`` + ``/_ping``); raises EngineError naming the address."""
        address = _engine_address()
        try:
            client = docker.from_env(timeout=max(int(timeout), 1))
            client.ping()
        except (docker.errors.DockerException, *_TRANSIENT) as e:
            raise EngineError(
                f"cannot reach the Docker engine at {address}: {_explain(e)}\n"
                "Is the daemon running (systemctl start docker / dockerd) and may this user use it? "
                "Set DOCKER_HOST to use another engine."
            ) from e
        return cls(client)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _TRANSIENT as e:
            raise EngineError(f"{what}: the engine at {self.address} stopped answering: {e}") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"{what}: {_explain(e)}") from e

    # ---- engine facts

    def architecture(self) -> str:
        """The engine's CPU architecture as uname says it: ``x86_64`` or ``aarch64``."""
        if self._arch is None:
            info = self._call("reading engine info", self.client.info)
            arch = info.get("Architecture", "x86_64")
            self._arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
        return self._arch

    def version(self) -> str:
        return str(self._call("reading engine version", self.client.version).get("Version", "?"))

    # ---- images (build.py)

    def image_exists(self, ref: str) -> bool:
        """True if the engine has image ``ref`` (``docker image inspect``)."""
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as e:
            raise EngineError(f"inspecting image {ref}: {_explain(e)}") from e

    def image_size(self, ref: str) -> int:
        return int(self._call(f"inspecting image {ref}", self.client.images.get, ref).attrs.get("Size", 0))

    def build_image(self, context: bytes, tag: str, labels: dict[str, str]) -> str:
        """``docker build`` from an in-memory tar ``context``; returns the image id.
        Raises BuildError with the builder's log tail."""
        from labctl.errors import BuildError

        try:
            image, _log = self.client.images.build(
                fileobj=io.BytesIO(context), custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
            )
        except docker.errors.BuildError as e:
            tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in list(e.build_log)[-10:])
            raise BuildError(f"docker build of {tag} failed: {e.msg}\n{tail}") from e
        except (docker.errors.DockerException, *_TRANSIENT) as e:
            raise BuildError(f"docker build of {tag} failed: {_explain(e)}") from e
        return str(image.id)

    def tag_image(self, ref: str, repo: str, tag: str) -> None:
        image = self._call(f"inspecting image {ref}", self.client.images.get, ref)
        self._call(f"tagging {ref} as {repo}:{tag}", image.tag, repo, tag)

    def prune_images(self, label: str, keep: str, older_than_s: float = PRUNE_AFTER_S) -> list[str]:
        """Remove images carrying ``label`` (earlier workload builds) created more than
        ``older_than_s`` seconds ago, keeping ``keep``. Recent builds stay: another checkout
        (other sources, another branch) may be about to run its own. Best effort: an image
        still used by a container stays."""
        removed: list[str] = []
        try:
            kept_id = self.client.images.get(keep).id
            horizon = time.time() - older_than_s
            for img in self.client.images.list(filters={"label": [label]}):
                if img.id == kept_id or _created_epoch(img.attrs.get("Created", "")) > horizon:
                    continue
                try:
                    self.client.images.remove(img.id, force=False, noprune=False)
                    removed.extend(img.tags or [img.short_id])
                except docker.errors.APIError:
                    pass  # in use by a container of another run, or a parent: keep it
        except (docker.errors.DockerException, *_TRANSIENT):
            pass
        return removed

    # ---- creation: everything labctl creates is labelled by labels_for()

    def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None) -> str:
        """``docker volume create`` with labctl's labels; returns the name."""
        self._call(f"creating volume {name}", self.client.volumes.create, name=name, labels=labels,
                   driver="local", driver_opts=driver_opts or {})
        return name

    def start_container(self, spec: RunSpec, role: str) -> Container:
        """``docker create`` + ``docker start``. The engine's refusal (bad ipc donor, unknown
        sysctl...) raises ContainerStartError with its words; the container, if created, is
        left for label-based teardown."""
        mounts = [
            docker.types.Mount(target=t, source=s, type=kind, read_only=ro)
            for kind, s, t, ro in spec.mounts
        ]
        kwargs = dict(
            image=spec.image, name=spec.name, labels=spec.labels, command=spec.command,
            entrypoint=spec.entrypoint, ipc_mode=spec.ipc_mode, network_mode=spec.network_mode,
            user=spec.user or None, read_only=spec.read_only, cap_drop=spec.cap_drop or None,
            cap_add=spec.cap_add or None, security_opt=spec.security_opt or None,
            pids_limit=spec.pids_limit, mem_limit=spec.mem_limit, shm_size=spec.shm_size,
            sysctls=spec.sysctls or None, environment=spec.environment or None, mounts=mounts or None,
            tmpfs=spec.tmpfs or None, privileged=spec.privileged, pid_mode=spec.pid_mode,
            devices=spec.devices or None, volumes_from=spec.volumes_from or None, detach=True,
        )
        try:
            obj = self.client.containers.create(**{k: v for k, v in kwargs.items() if v is not None})
        except docker.errors.ImageNotFound as e:
            raise ContainerStartError(role, f"image {spec.image} not found: {_explain(e)}") from e
        except docker.errors.APIError as e:
            raise ContainerStartError(role, _explain(e)) from e
        except _TRANSIENT as e:
            raise EngineError(f"creating container {role!r}: the engine at {self.address} stopped answering") from e
        container = Container(self, obj, role)
        container.start()
        return container

    # ---- teardown and inventory, by label

    def find(self, labels: dict[str, str]) -> dict[str, list[str]]:
        """Names of containers (any state), volumes and networks carrying all ``labels``."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return {
            "containers": [c.name for c in self._call("listing containers", self.client.containers.list, all=True, filters=filters,
                                     ignore_removed=True)],
            "volumes": [v.name for v in self._call("listing volumes", self.client.volumes.list, filters=filters)],
            "networks": [n.name for n in self._call("listing networks", self.client.networks.list, filters=filters)],
        }

    def run_ids(self) -> dict[str, dict[str, str]]:
        """Run ids present on the engine, with the owner labels of one of their objects."""
        runs: dict[str, dict[str, str]] = {}
        filters = {"label": [f"{MANAGED}=true"]}
        for c in self._call("listing containers", self.client.containers.list, all=True, filters=filters,
                                     ignore_removed=True):
            runs.setdefault(c.labels.get(RUN_ID, ""), dict(c.labels))
        for v in self._call("listing volumes", self.client.volumes.list, filters=filters):
            runs.setdefault((v.attrs.get("Labels") or {}).get(RUN_ID, ""), dict(v.attrs.get("Labels") or {}))
        for n in self._call("listing networks", self.client.networks.list, filters=filters):
            runs.setdefault((n.attrs.get("Labels") or {}).get(RUN_ID, ""), dict(n.attrs.get("Labels") or {}))
        return runs

    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        """Force-remove every container, then volume and network carrying ``labels``.
        Best effort per object: returns (removed names, errors) and never raises for one
        object, so one failure does not hide the rest."""
        removed: list[str] = []
        errors: list[str] = []
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}

        def attempt(what: str, fn: Callable[[], object]) -> None:
            for _ in range(3):
                try:
                    fn()
                    removed.append(what)
                    return
                except docker.errors.NotFound:
                    return
                except docker.errors.APIError as e:
                    msg = _explain(e)
                    if "in progress" in msg or "is in use" in msg:
                        time.sleep(0.1)  # removal racing the engine's own cleanup: retry briefly
                        continue
                    errors.append(f"{what}: {msg}")
                    return
                except _TRANSIENT as e:
                    errors.append(f"{what}: {e}")
                    return
            errors.append(f"{what}: still in use")

        try:
            containers = self.client.containers.list(all=True, filters=filters, ignore_removed=True)
        except (docker.errors.DockerException, *_TRANSIENT) as e:
            return removed, [f"listing containers: {_explain(e)}"]
        for c in containers:
            attempt(f"container {c.name}", lambda c=c: c.remove(force=True, v=True))  # type: ignore[misc]
        try:
            for v in self.client.volumes.list(filters=filters):
                attempt(f"volume {v.name}", lambda v=v: v.remove(force=True))  # type: ignore[misc]
            for n in self.client.networks.list(filters=filters):
                attempt(f"network {n.name}", n.remove)
        except (docker.errors.DockerException, *_TRANSIENT) as e:
            errors.append(f"listing volumes/networks: {_explain(e)}")
        return removed, errors


def process_ipc_namespace(pid: int) -> str | None:
    """The IPC namespace of host pid ``pid``, readable when labctl shares the engine's pid
    namespace with enough privilege; None otherwise."""
    try:
        return os.readlink(f"/proc/{pid}/ns/ipc")
    except OSError:
        return None


# ---- bench ----
# Engine operations only ``labctl bench`` needs. Everything created here is labelled
# by the caller with ``labels_for``, so ``labctl clean`` and the leak guard see it.


def create_network(engine: Engine, name: str, labels: dict[str, str]) -> str:
    """``docker network create --driver bridge NAME`` with labctl's ``labels``; returns the
    name. Containers join it with ``RunSpec(network_mode=NAME)``. Raises EngineError."""
    if not labels.get(MANAGED):
        raise LabctlError(f"network {name}: labels must come from labels_for()")
    engine._call(f"creating network {name}", engine.client.networks.create, name=name, driver="bridge",
                 labels=labels, check_duplicate=True)
    return name


def network_gateway(engine: Engine, name: str) -> str | None:
    """The host-side (gateway) IPv4 address of bridge network ``name`` (``docker network
    inspect``), or None when the engine assigned none."""
    net = engine._call(f"inspecting network {name}", engine.client.networks.get, name)
    for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
        gw = cfg.get("Gateway")
        if gw and ":" not in gw:
            return str(gw)
    return None


def container_ip(container: Container, network: str) -> str | None:
    """The IPv4 address of a running ``container`` on ``network`` (``docker inspect``
    NetworkSettings.Networks), or None if it is not attached. Raises EngineError."""
    try:
        container._obj.reload()
    except docker.errors.DockerException as e:
        raise EngineError(f"inspecting container {container.role!r}: {_explain(e)}") from e
    nets = (container._obj.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    addr = (nets.get(network) or {}).get("IPAddress")
    return str(addr) if addr else None
