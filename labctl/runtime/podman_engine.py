"""``Engine`` for Podman, through its Docker-compatible API (``podman system service``).

Podman 4 serves the Docker engine API (v1.41) on its socket, so this is the Docker
implementation (same SDK, same containers, same error translation) with Podman's
differences hidden here and nowhere else:

* **Removal order.** Podman refuses to remove a container whose namespace others joined
  ("has dependent containers which must be removed before it"), even with force; Docker
  does not care. Containers are removed joiners first (reverse start order).
* **tmpfs volume size.** Podman's ``local`` volume driver takes ``o=size=`` as an XFS
  project quota ("volume options size and inodes not supported" on other file systems).
  tmpfs's own ``nr_blocks`` (pages) is the same limit under another name, passed to
  mount(2) untouched: ``size=16m`` becomes ``nr_blocks=4096`` with 4 KiB pages.
* **Pods.** Podman has pods (``podman kube play`` makes them, with their infra
  container); ``find``/``run_ids``/``remove_labelled`` cover labelled pods too, through
  the libpod API on the same socket (the compatible API has no pods).
* **Default IPC mode.** Podman makes a container ``shareable`` unless told otherwise,
  Docker ``private``. Nothing to hide here: the runner passes every mode a scenario
  writes explicitly, and only a container with no ``ipc:`` gets the engine's default
  (the ``default-ipc-mode`` lesson shows the difference on purpose).
* **umask.** The compatible API has no umask (Docker has none); a container with one is created
  through libpod's create, whose spec generator takes it (``podman run --umask``): ``libpod_spec``
  maps the RunSpec there.
* **Image names.** Podman stores a local build as ``localhost/NAME`` (``podman build``)
  or ``docker.io/NAME`` (the compatible API); both resolve from the short ``NAME`` labctl
  uses, and the build goes through the compatible API like Docker's.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import docker
import docker.errors

from labctl.runtime.lookup import podman_address, podman_candidates, podman_start_hint
from labctl.errors import ContainerStartError, EngineError
from labctl.units import parse_size
from labctl.runtime.labels import MANAGED, RUN_ID
from labctl.runtime.docker_calls import TRANSIENT, explain
from labctl.runtime import oci
from labctl.runtime.docker_engine import DockerEngine, _label_filter
from labctl.runtime.engine import Privileges, RunSpec
from labctl.runtime.lookup import rootless_owner, user_name

LIBPOD = "/v4.0.0/libpod"  # the libpod API prefix (Podman >= 4), served on the same socket


def tmpfs_options(o: str, page_size: int | None = None) -> str:
    """Mount options of a tmpfs volume in the form Podman passes on to mount(2):
    ``size=`` (the size grammar of ``labctl.units``) becomes ``nr_blocks=PAGES`` (rounded up), the rest unchanged.
    ``mode=1777,size=16m`` -> ``mode=1777,nr_blocks=4096`` with 4096-byte pages."""
    page = page_size or os.sysconf("SC_PAGE_SIZE")
    out = []
    for opt in o.split(","):
        key, _, value = opt.partition("=")
        try:
            size = parse_size(value) if key == "size" else None
        except ValueError:
            size = None
        out.append(opt if size is None else f"nr_blocks={-(-size // page)}")
    return ",".join(out)


def removal_order(containers: list, deps: Callable[[object], set[str]], ident: Callable[[object], set[str]]) -> list:
    """``containers`` ordered so that each comes before every container it joined
    (``deps(c)``: the ids/names it names in ``container:X`` modes; ``ident(c)``: its own id
    and name). Cycles cannot exist (a container joins an existing one); anything left
    over is appended as is."""
    pending = list(containers)
    out = []
    while pending:
        needed = set().union(*(deps(c) for c in pending))
        free = [c for c in pending if not (ident(c) & needed)]
        if not free:
            return out + pending
        out += free
        pending = [c for c in pending if c not in free]
    return out


def _joined(c) -> set[str]:  # noqa: ANN001 - a docker SDK container
    host = (c.attrs or {}).get("HostConfig") or {}
    modes = [host.get("IpcMode"), host.get("NetworkMode"), host.get("PidMode"), host.get("UTSMode")]
    return {m.split(":", 1)[1] for m in modes if isinstance(m, str) and m.startswith("container:")}


def _ids(c) -> set[str]:  # noqa: ANN001
    return {str(c.id), str(c.name)}


def _ns(mode: str | None) -> dict[str, str] | None:
    """A namespace mode (``shareable``, ``none``, ``container:NAME``...) as libpod's
    ``{"nsmode": ..., "value": ...}``; None: the engine's default."""
    if mode is None:
        return None
    kind, _, value = mode.partition(":")
    return {"nsmode": kind, "value": value} if value else {"nsmode": kind}


def libpod_spec(spec: RunSpec, security_opt: list[str]) -> dict:
    """``spec`` as the body of libpod's ``/containers/create`` (a SpecGenerator), for what
    only libpod takes (``umask``). Mounts, namespaces, limits and the security settings go
    as the compatible create passes them; ``security_opt`` is the engine's (seccomp by path)."""
    body: dict = {
        "name": spec.name, "image": spec.image, "labels": spec.labels, "env": spec.environment,
        "user": spec.user or "", "read_only_filesystem": spec.read_only, "cap_drop": spec.cap_drop,
        "cap_add": spec.cap_add, "privileged": spec.privileged, "sysctl": spec.sysctls,
        "no_new_privileges": "no-new-privileges:true" in security_opt, "init": spec.init,
        "devices": [{"path": d.split(":", 1)[0]} for d in spec.devices], "volumes_from": spec.volumes_from,
        "volumes": [{"Name": src, "Dest": dst, "Options": ["ro"] if ro else []}
                    for kind, src, dst, ro in spec.mounts if kind == "volume"],
        "mounts": [{"destination": dst, "type": "bind", "source": src, "options": ["rbind", *(["ro"] if ro else [])]}
                   for kind, src, dst, ro in spec.mounts if kind == "bind"]
        + [{"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": [o for o in opts.split(",") if o]}
           for dst, opts in spec.tmpfs.items()],
    }
    for key, value in (("command", spec.command), ("entrypoint", spec.entrypoint), ("umask", spec.umask),
                       ("shm_size", spec.shm_size), ("ipcns", _ns(spec.ipc_mode)),
                       ("netns", _ns(spec.network_mode)), ("pidns", _ns(spec.pid_mode)),
                       ("userns", _ns(spec.userns_mode)), ("seccomp_profile_path", spec.seccomp_profile)):
        if value is not None:
            body[key] = value
    limits: dict = {}
    if spec.mem_limit:
        limits["memory"] = {"limit": parse_size(spec.mem_limit)}
        if spec.memswap_limit:
            limits["memory"]["swap"] = spec.memswap_limit
    if spec.pids_limit:
        limits["pids"] = {"limit": spec.pids_limit}
    if limits:
        body["resource_limits"] = limits
    if spec.restart_policy != "no":
        name, _, count = spec.restart_policy.partition(":")
        body["restart_policy"] = name
        if count:
            body["restart_tries"] = int(count)
    for o in security_opt:
        if o.startswith("label="):
            body.setdefault("selinux_opts", []).append(o[len("label="):])
        elif o.startswith("apparmor="):
            body["apparmor_profile"] = o.split("=", 1)[1]
        elif o == "seccomp=unconfined":
            body["seccomp_profile_path"] = "unconfined"
    return body


class PodmanEngine(DockerEngine):
    """A connection to Podman's API service. Create with ``Engine.connect("podman")``."""

    name = "podman"
    # Podman 4's followed log skips or reorders lines across a restart under load: the
    # runs after the first are read by repeated replays (DockerContainer._follow_restarts)
    follows_log_across_restarts = False

    @classmethod
    def connect(cls, timeout: float = 10.0) -> "PodmanEngine":
        """Find Podman's API socket (``engines.podman_candidates``) and ping it; raises
        EngineError saying how to start the service when none answers."""
        address = podman_address()
        if address is None:
            raise EngineError("no Podman API service is listening (looked for "
                              + ", ".join(podman_candidates()) + ");\n" + podman_start_hint(podman_candidates()[0]))
        try:
            client = docker.DockerClient(base_url=address, timeout=max(int(timeout), 1))
            client.ping()
        except (docker.errors.DockerException, *TRANSIENT) as e:
            raise EngineError(f"cannot reach Podman's API service at {address}: {explain(e)}\n"
                              + podman_start_hint(address)) from e
        engine = cls(client, address)
        if not engine.serves_podman():
            engine.close()
            raise EngineError(f"{address} answers, but it is not Podman (its /version names no Podman Engine); "
                              "use --engine docker, or point CONTAINER_HOST at Podman's socket")
        return engine

    # ---- OCI runtimes: Podman 4's API ignores a container's runtime (HostConfig.Runtime and
    # libpod's oci_runtime), so a container on a runtime other than the service's default is
    # created through a service whose default it is (oci.PODMAN_RUNTIME_SOCKET), on the same
    # storage; the container object keeps that client, so start/exec/logs go through it too.

    def _runtime_clients(self) -> dict[str, Any]:
        if getattr(self, "_by_runtime", None) is None:
            self._by_runtime: dict[str, Any] = {}
            root = self._storage_root()
            for name in oci.RUNTIMES:
                sock = oci.podman_runtime_socket(name, self.address)
                if not os.path.exists(sock) or f"unix://{sock}" == self.address:
                    continue
                try:
                    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=10)
                    info = client.info()
                except (docker.errors.DockerException, *TRANSIENT):
                    continue
                # only a service on this engine's storage (the same user): its containers must
                # be this engine's, seen by its inspect, joins and teardown
                if os.path.basename(str(info.get("DefaultRuntime", ""))) == name \
                        and str(info.get("DockerRootDir", "")) == root:
                    self._by_runtime[name] = client
                else:
                    client.close()
        return self._by_runtime

    def _storage_root(self) -> str:
        return str(self._call("reading engine info", self.client.info).get("DockerRootDir", ""))

    def _security_opt(self, spec: RunSpec) -> list[str]:
        # Podman's compatible API reads seccomp=VALUE as a file path (Docker's sends the content)
        return [*spec.security_opt, *([f"seccomp={spec.seccomp_profile}"] if spec.seccomp_profile else [])]

    def default_oci_runtime(self) -> str:
        info = self._call("reading engine info", self.client.info)
        return os.path.basename(str(info.get("DefaultRuntime") or "runc"))

    def oci_runtimes(self) -> dict[str, str]:
        found = {self.default_oci_runtime(): "default"}
        for name in self._runtime_clients():
            found.setdefault(name, oci.podman_runtime_socket(name, self.address))
        return found

    def _client_for(self, spec: RunSpec) -> Any:
        if spec.runtime is None or spec.runtime == self.default_oci_runtime():
            return self.client
        client = self._runtime_clients().get(spec.runtime)
        if client is None:
            raise ContainerStartError(spec.name, oci.availability(spec.runtime, "podman", self.oci_runtimes(),
                                                                 address=self.address).message())
        return client

    def close(self) -> None:
        for client in (getattr(self, "_by_runtime", None) or {}).values():
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        super().close()

    def privileges(self) -> Privileges:
        """From libpod's ``/info`` (``podman info``): host.security.rootless, host.cgroupVersion
        and host.cgroupControllers (for a rootless service: the controllers delegated to its
        user, none on cgroup v1, where Podman silently ignores every limit)."""
        if getattr(self, "_privileges", None) is None:
            info = self._call("reading engine info", self._libpod, "get", "/info") or {}
            host = info.get("host") or {}
            rootless = bool((host.get("security") or {}).get("rootless"))
            cgroup = str(host.get("cgroupVersion") or "")
            controllers: frozenset[str] | None = None
            if rootless:
                found = {str(c) for c in host.get("cgroupControllers") or []}
                if cgroup == "v2" and found:
                    found.add("freezer")  # cgroup.freeze of the delegated subtree
                controllers = frozenset(found)
            uid = rootless_owner(self.address) if rootless else None
            self._privileges = Privileges(rootless, cgroup, controllers,
                                          user_name(uid) if uid is not None else ("?" if rootless else "root"))
        return self._privileges

    def version(self) -> str:
        info = self._call("reading engine version", self.client.version)
        for c in info.get("Components") or []:
            if "podman" in str(c.get("Name", "")).lower():
                return str(c.get("Version", "?"))
        return str(info.get("Version", "?"))

    # ---- volumes: tmpfs size as nr_blocks

    def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None) -> str:
        opts = dict(driver_opts or {})
        if opts.get("type") == "tmpfs" and "o" in opts:
            opts["o"] = tmpfs_options(opts["o"])
        return super().create_volume(name, labels, opts)

    # ---- teardown: joiners first, and pods

    def _removal_order(self, containers: list) -> list:
        return removal_order(containers, _joined, _ids)

    def _libpod(self, method: str, path: str, **params: object) -> object:
        url = self.api.base_url + LIBPOD + path
        res = getattr(self.api, f"_{method}")(url, params=params)
        return self.api._result(res, json=method == "get")

    def _pods(self, filters: dict[str, list[str]]) -> list[dict]:
        pods = self._call("listing pods", self._libpod, "get", "/pods/json", filters=json.dumps(filters)) or []
        wanted = dict(f.split("=", 1) for f in filters.get("label", []))
        return [p for p in pods if all((p.get("Labels") or {}).get(k) == v for k, v in wanted.items())]

    def _remove_more(self, filters: dict, attempt: Callable[[str, Callable[[], object]], None],
                     errors: list[str]) -> None:
        try:
            pods = self._pods(filters)
        except EngineError as e:
            errors.append(str(e))
            return
        for p in pods:
            attempt(f"pod {p.get('Name')}", lambda p=p: self._libpod("delete", f"/pods/{p.get('Id')}", force=True))

    def create_container(self, spec: RunSpec, role: str):  # noqa: ANN201 - an SDK container
        """As Docker's, and with ``spec.pod`` through libpod's create (the compatible API
        cannot put a container in a pod; Podman refuses a ``container:`` join of a pod
        member from outside it). Only what a read-only probe needs is passed on there."""
        if not spec.pod and spec.umask is not None:
            return self._create_libpod(spec, role, libpod_spec(spec, self._security_opt(spec)))
        if not spec.pod:
            return super().create_container(spec, role)
        body: dict = {
            "name": spec.name, "image": spec.image, "command": spec.command or [], "labels": spec.labels,
            "pod": spec.pod, "user": spec.user or "", "cap_drop": spec.cap_drop, "cap_add": spec.cap_add,
            "read_only_filesystem": spec.read_only,
            "no_new_privileges": "no-new-privileges:true" in spec.security_opt,
        }
        if spec.pid_mode and spec.pid_mode.startswith("container:"):
            body["pidns"] = {"nsmode": "container", "value": spec.pid_mode.split(":", 1)[1]}
        if spec.mem_limit:
            body["resource_limits"] = {"memory": {"limit": parse_size(spec.mem_limit)}}
        if spec.umask is not None:
            body["umask"] = spec.umask
        return self._create_libpod(spec, role, body)

    def _create_libpod(self, spec: RunSpec, role: str, body: dict):  # noqa: ANN202 - an SDK container
        """libpod's ``POST /containers/create`` of ``body`` through the client for ``spec``'s
        runtime; the SDK's container. ContainerStartError with Podman's words, EngineError."""
        client = self._client_for(spec)
        url = client.api.base_url + LIBPOD + "/containers/create"
        try:
            res = client.api._post_json(url, data=body)
            cid = client.api._result(res, json=True)["Id"]
        except docker.errors.APIError as e:
            raise ContainerStartError(role, explain(e)) from e
        except (docker.errors.DockerException, *TRANSIENT) as e:
            where = f" in pod {spec.pod}" if spec.pod else ""
            raise EngineError(f"creating container {role!r}{where}: {explain(e)}") from e
        return self._call(f"inspecting container {role!r}", client.containers.get, cid)

    # ---- labctl inspect: the compatible API's inspect says nothing of pods

    def _pod_index(self) -> dict[str, tuple[str, bool]]:
        """container id -> (pod name, is the pod's infra container), from the libpod pod list."""
        index: dict[str, tuple[str, bool]] = {}
        for p in self._call("listing pods", self._libpod, "get", "/pods/json") or []:
            for c in p.get("Containers") or []:
                index[str(c.get("Id"))] = (str(p.get("Name")), c.get("Id") == p.get("InfraId"))
        return index

    def _with_pods(self, docs: list[dict]) -> list[dict]:
        """Podman's inspect documents with ``Pod`` (the pod's name) and ``IsInfra`` set."""
        if not docs:
            return docs
        index = self._pod_index()
        for d in docs:
            pod, infra = index.get(str(d.get("Id")), (None, False))
            d["Pod"], d["IsInfra"] = pod, infra
        return docs

    def survey(self, filters: dict[str, list[str]], *, all: bool = False) -> list[dict]:
        return self._with_pods(super().survey(filters, all=all))

    def inspect_container(self, ref: str) -> dict | None:
        doc = super().inspect_container(ref)
        return self._with_pods([doc])[0] if doc is not None else None

    def find(self, labels: dict[str, str]) -> dict[str, list[str]]:
        found = super().find(labels)
        found["pods"] = [str(p.get("Name")) for p in self._pods(_label_filter(labels))]
        return found

    def run_ids(self) -> dict[str, dict[str, str]]:
        runs = super().run_ids()
        for p in self._pods(_label_filter({MANAGED: "true"})):
            labels = dict(p.get("Labels") or {})
            runs.setdefault(labels.get(RUN_ID, ""), labels)
        return runs
