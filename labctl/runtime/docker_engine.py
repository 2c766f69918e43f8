"""``Engine`` on the Docker SDK (``docker`` package, engine API over ``$DOCKER_HOST``).

With ``docker_container`` the only code of labctl that imports ``docker``. Every
foreign error is translated here into ``labctl.errors`` (see ``engine`` for the
contract); every object it creates carries the labels it is given.
"""

from __future__ import annotations

import io
import json
import time
from datetime import datetime
from typing import Any, Callable

import docker
import docker.errors

from labctl.runtime.lookup import docker_address
from labctl.errors import BuildError, ContainerStartError, EngineError, LabctlError
from labctl.runtime.labels import MANAGED, RUN_ID
from labctl.runtime.docker_calls import TRANSIENT, explain, inspect
from labctl.runtime.docker_container import DockerContainer, create_kwargs, sdk_create
from labctl.runtime.logs import Output
from labctl.runtime.engine import Engine, Privileges, RunSpec

# Workload builds younger than this are never pruned: 84 kB each, and a second checkout
# building other sources on the same engine must not lose its image mid-run.
PRUNE_AFTER_S = 7 * 24 * 3600.0
# Go's names of the architectures labctl supports (/version "Arch") -> the kernel's (uname -m)
GO_ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}


def engine_address() -> str:
    """Where the SDK connects: ``$DOCKER_HOST`` or the default socket."""
    return docker_address()


def _created_epoch(created: str) -> float:
    """The engine's RFC 3339 ``Created`` (nanosecond precision) as epoch seconds; 0 if unreadable."""
    try:
        head = created.split(".")[0].rstrip("Z")
        return datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return 0.0


def _label_filter(labels: dict[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{k}={v}" for k, v in labels.items()]}


def _carrying(objects: list, labels: dict[str, str]) -> list:
    """The SDK ``objects`` (containers, volumes, networks) that carry every one of ``labels``.
    The engine filtered already; this holds where an engine ORs several label filters
    (Podman 4.3 does for volumes), which would let one scenario remove another's volume."""
    def has(obj) -> bool:  # noqa: ANN001
        own = (obj.attrs or {}).get("Labels") or ((obj.attrs or {}).get("Config") or {}).get("Labels") or {}
        return all(own.get(k) == v for k, v in labels.items())
    return [o for o in objects if has(o)]


class DockerEngine(Engine):
    """A connection to the Docker engine. Create with ``Engine.connect()``."""

    name = "docker"
    # whether `logs --follow` keeps a restarted container's lines in order (DockerContainer)
    follows_log_across_restarts = True

    def __init__(self, client: "docker.DockerClient", address: str | None = None) -> None:
        self.client = client
        self.api = client.api
        self.address = address or engine_address()
        self._arch: str | None = None
        self._version: dict | None = None

    @classmethod
    def connect(cls, timeout: float = 10.0) -> "DockerEngine":
        """``docker.from_env`` + ``/_ping``; raises EngineError naming the address."""
        address = engine_address()
        try:
            client = docker.from_env(timeout=max(int(timeout), 1))
            client.ping()
        except (docker.errors.DockerException, *TRANSIENT) as e:
            raise EngineError(
                f"cannot reach the Docker engine at {address}: {explain(e)}\n"
                "Is the daemon running (systemctl start docker / dockerd) and may this user use it? "
                "Set DOCKER_HOST to use another engine, or --engine podman for Podman."
            ) from e
        return cls(client, address)

    def serves_podman(self) -> bool:
        """True when the engine answering is Podman's compatible API (``/version``
        Components names ``Podman Engine``). False if the version cannot be read."""
        try:
            components = self._version_info().get("Components") or []
        except (docker.errors.DockerException, *TRANSIENT):
            return False
        return any("podman" in str(c.get("Name", "")).lower() for c in components)

    def _version_info(self) -> dict:
        """The engine's ``/version`` answer, asked once per connection (the engine does not
        change version under a connection; ``serves_podman``, ``version`` and
        ``architecture`` all read it). SDK errors propagate."""
        if self._version is None:
            self._version = dict(self.client.version())
        return self._version

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (an SDK call) with its errors as EngineError("WHAT: ...")."""
        try:
            return fn(*args, **kwargs)
        except TRANSIENT as e:
            raise EngineError(f"{what}: the engine at {self.address} stopped answering: {e}") from e
        except docker.errors.DockerException as e:
            raise EngineError(f"{what}: {explain(e)}") from e

    # ---- engine facts

    def architecture(self) -> str:
        if self._arch is None:
            # /version (already asked) names the two architectures labctl supports in Go's
            # words; /info, slower on a busy engine, is asked only for any other answer
            arch = str(self._call("reading engine version", self._version_info).get("Arch", ""))
            if arch in GO_ARCHES:
                self._arch = GO_ARCHES[arch]
            else:
                info = self._call("reading engine info", self.client.info)
                arch = info.get("Architecture", "x86_64")
                self._arch = GO_ARCHES.get(arch, arch)
        return self._arch

    def version(self) -> str:
        return str(self._call("reading engine version", self._version_info).get("Version", "?"))

    def privileges(self) -> Privileges:
        """From ``docker info``: ``name=rootless`` among SecurityOptions (rootless Docker),
        CgroupVersion; a rootless daemon limits memory/pids only where info says it can
        (MemoryLimit, PidsLimit: cgroup v2 with those controllers delegated)."""
        info = self._call("reading engine info", self.client.info)
        cgroup = f"v{info['CgroupVersion']}" if info.get("CgroupVersion") else ""
        if "name=rootless" not in [str(o) for o in info.get("SecurityOptions") or []]:
            return Privileges(False, cgroup)
        usable = info.get("CgroupDriver") != "none"
        controllers = {name for name, key in (("memory", "MemoryLimit"), ("pids", "PidsLimit"))
                       if usable and info.get(key)}
        if usable and cgroup == "v2":
            controllers.add("freezer")  # cgroup.freeze of the delegated subtree
        return Privileges(True, cgroup, frozenset(controllers), "?")

    def oci_runtimes(self) -> dict[str, str]:
        info = self._call("reading engine info", self.client.info)
        return {str(k): str((v or {}).get("path", k)) for k, v in (info.get("Runtimes") or {}).items()}

    # ---- images

    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as e:
            raise EngineError(f"inspecting image {ref}: {explain(e)}") from e

    def image_size(self, ref: str) -> int:
        return int(self._call(f"inspecting image {ref}", self.client.images.get, ref).attrs.get("Size", 0))

    def build_image(self, context: bytes, tag: str, labels: dict[str, str], *, nocache: bool = False,
                    platform: str | None = None) -> str:
        extra = {"platform": platform} if platform else {}
        try:
            image, _log = self.client.images.build(
                fileobj=io.BytesIO(context), custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
                nocache=nocache, **extra,
            )
        except docker.errors.BuildError as e:
            tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in list(e.build_log)[-10:])
            raise BuildError(f"docker build of {tag} failed: {e.msg}\n{tail}") from e
        except (docker.errors.DockerException, *TRANSIENT) as e:
            raise BuildError(f"docker build of {tag} failed: {explain(e)}") from e
        return str(image.id)

    def tag_image(self, ref: str, repo: str, tag: str) -> None:
        image = self._call(f"inspecting image {ref}", self.client.images.get, ref)
        if f"{repo}:{tag}" in (image.tags or []):
            return  # already so tagged (every run after a build): no write to the engine
        self._call(f"tagging {ref} as {repo}:{tag}", image.tag, repo, tag)

    def prune_images(self, label: str, keep: str, older_than_s: float = PRUNE_AFTER_S) -> list[str]:
        """Recent builds stay: another checkout (other sources, another branch) may be
        about to run its own. An image still used by a container stays."""
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
        except (docker.errors.DockerException, *TRANSIENT):
            pass
        return removed

    # ---- labctl's own container (labctl.runtime.hostpaths, labctl.runtime.clean)

    def container_mounts(self, ref: str) -> list[tuple[str, str]] | None:
        """(container path, host path) of each bind mount of container ``ref``
        (``docker inspect`` Mounts), or None when the engine has no such container."""
        try:
            attrs = inspect(self.api, ref)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, *TRANSIENT) as e:
            raise EngineError(f"inspecting container {ref[:12]}: {explain(e)}") from e
        return [(str(m["Destination"]), str(m["Source"])) for m in attrs.get("Mounts") or []
                if m.get("Type") == "bind" and m.get("Source") and m.get("Destination")]

    def container_running(self, ref: str) -> bool | None:
        """Whether container ``ref`` runs (``docker inspect`` State.Running); False when it
        is gone; None when the engine cannot say."""
        try:
            return bool(inspect(self.api, ref)["State"]["Running"])
        except docker.errors.NotFound:
            return False
        except (docker.errors.DockerException, *TRANSIENT, KeyError):
            return None

    # ---- creation: everything labctl creates is labelled by labels_for()

    def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None) -> str:
        self._call(f"creating volume {name}", self.client.volumes.create, name=name, labels=labels,
                  driver="local", driver_opts=driver_opts or {})
        return name

    def create_network(self, name: str, labels: dict[str, str]) -> str:
        if not labels.get(MANAGED):
            raise LabctlError(f"network {name}: labels must come from labels_for()")
        self._call(f"creating network {name}", self.client.networks.create, name=name, driver="bridge",
                  labels=labels, check_duplicate=True)
        return name

    def network_gateway(self, name: str) -> str | None:
        net = self._call(f"inspecting network {name}", self.client.networks.get, name)
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            gw = cfg.get("Gateway")
            if gw and ":" not in gw:
                return str(gw)
        return None

    def start_container(self, spec: RunSpec, role: str, output: Output | None = None, *,
                        start: bool = True) -> DockerContainer:
        obj = self.create_container(spec, role)
        # attach, inspect, logs through the service that created it (Podman: a runtime's own
        # service, whose runtime flags then also apply when attaching initialises the container)
        api = getattr(getattr(obj, "client", None), "api", None) or self.api
        container = DockerContainer(api, obj, role, output, restarts=spec.restart_policy != "no",
                                    follow_log=self.follows_log_across_restarts)
        if start:
            container.start()
        return container

    def create_container(self, spec: RunSpec, role: str):  # noqa: ANN201 - an SDK container
        """``docker create`` of ``spec`` (nothing attached, not started); the SDK's
        container. ContainerStartError with the engine's words, EngineError."""
        if spec.pod:
            raise ContainerStartError(role, f"{self.name} has no pods (pod {spec.pod!r})")
        if spec.umask is not None:
            raise ContainerStartError(role, f"{self.name} has no per-container umask (umask {spec.umask})")
        kwargs = create_kwargs(spec, self._security_opt(spec))
        try:
            obj = sdk_create(self._client_for(spec), {k: v for k, v in kwargs.items() if v is not None})
        except docker.errors.ImageNotFound as e:
            raise ContainerStartError(role, f"image {spec.image} not found: {explain(e)}") from e
        except docker.errors.APIError as e:
            raise ContainerStartError(role, explain(e)) from e
        except TRANSIENT as e:
            raise EngineError(f"creating container {role!r}: the engine at {self.address} stopped answering") from e
        return obj

    # ---- looking at containers labctl did not create (labctl inspect; docker_survey)

    def survey(self, filters: dict[str, list[str]], *, all: bool = False) -> list[dict]:
        from labctl.runtime import docker_survey
        return docker_survey.survey(self, filters, all=all)

    def inspect_container(self, ref: str) -> dict | None:
        from labctl.runtime import docker_survey
        return docker_survey.inspect_container(self, ref)

    def memory_stats(self, ref: str) -> dict | None:
        from labctl.runtime import docker_survey
        return docker_survey.memory_stats(self, ref)

    def run_to_exit(self, spec: RunSpec, timeout: float) -> tuple[int | None, str]:
        from labctl.runtime import docker_survey
        return docker_survey.run_to_exit(self, spec, timeout)

    def _security_opt(self, spec: RunSpec) -> list[str]:
        """``security_opt`` as the engine takes it: Docker wants a seccomp profile's content
        (the docker CLI reads the file), so ``seccomp=PATH`` becomes ``seccomp=JSON``."""
        if spec.seccomp_profile is None:
            return list(spec.security_opt)
        try:
            with open(spec.seccomp_profile, encoding="utf-8") as f:
                content = json.dumps(json.load(f))
        except (OSError, ValueError) as e:
            raise ContainerStartError(spec.name, f"seccomp profile {spec.seccomp_profile}: {e}") from e
        return [*spec.security_opt, f"seccomp={content}"]

    def _client_for(self, spec: RunSpec) -> Any:
        """The API client that creates a container of ``spec`` (Docker: the one client)."""
        return self.client

    # ---- inventory and teardown, by label

    def find(self, labels: dict[str, str]) -> dict[str, list[str]]:
        filters = _label_filter(labels)
        return {
            "containers": [c.name for c in _carrying(self._call(
                "listing containers", self.client.containers.list, all=True, filters=filters, ignore_removed=True),
                labels)],
            "volumes": [v.name for v in _carrying(self._call("listing volumes", self.client.volumes.list,
                                                             filters=filters), labels)],
            "networks": [n.name for n in _carrying(self._call("listing networks", self.client.networks.list,
                                                              filters=filters), labels)],
        }

    def run_ids(self) -> dict[str, dict[str, str]]:
        runs: dict[str, dict[str, str]] = {}
        filters = _label_filter({MANAGED: "true"})
        for c in self._call("listing containers", self.client.containers.list, all=True, filters=filters,
                           ignore_removed=True):
            runs.setdefault(c.labels.get(RUN_ID, ""), dict(c.labels))
        for v in self._call("listing volumes", self.client.volumes.list, filters=filters):
            runs.setdefault((v.attrs.get("Labels") or {}).get(RUN_ID, ""), dict(v.attrs.get("Labels") or {}))
        for n in self._call("listing networks", self.client.networks.list, filters=filters):
            runs.setdefault((n.attrs.get("Labels") or {}).get(RUN_ID, ""), dict(n.attrs.get("Labels") or {}))
        return runs

    def _removal_order(self, containers: list) -> list:
        """The order ``remove_labelled`` removes containers in (Docker: any)."""
        return containers

    def _remove_more(self, filters: dict, attempt: Callable[[str, Callable[[], object]], None],
                     errors: list[str]) -> None:
        """Objects to remove by label before the containers (Docker: none; Podman: pods)."""

    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]:
        removed: list[str] = []
        errors: list[str] = []
        filters = _label_filter(labels)

        def attempt(what: str, fn: Callable[[], object]) -> None:
            for _ in range(3):
                try:
                    fn()
                    removed.append(what)
                    return
                except docker.errors.NotFound:
                    return
                except docker.errors.APIError as e:
                    msg = explain(e)
                    if "in progress" in msg or "is in use" in msg:
                        time.sleep(0.1)  # removal racing the engine's own cleanup: retry briefly
                        continue
                    errors.append(f"{what}: {msg}")
                    return
                except TRANSIENT as e:
                    errors.append(f"{what}: {e}")
                    return
            errors.append(f"{what}: still in use")

        self._remove_more(filters, attempt, errors)
        try:
            containers = _carrying(self.client.containers.list(all=True, filters=filters, ignore_removed=True),
                                   labels)
        except (docker.errors.DockerException, *TRANSIENT) as e:
            return removed, errors + [f"listing containers: {explain(e)}"]
        for c in self._removal_order(containers):
            attempt(f"container {c.name}", lambda c=c: c.remove(force=True, v=True))  # type: ignore[misc]
        try:
            for v in _carrying(self.client.volumes.list(filters=filters), labels):
                attempt(f"volume {v.name}", lambda v=v: v.remove(force=True))  # type: ignore[misc]
            for n in _carrying(self.client.networks.list(filters=filters), labels):
                attempt(f"network {n.name}", n.remove)
        except (docker.errors.DockerException, *TRANSIENT) as e:
            errors.append(f"listing volumes/networks: {explain(e)}")
        return removed, errors
