"""Kubernetes manifests (Pods, PersistentVolumeClaims) for a scenario: ``labctl export k8s``.

Mapping (docs/kubernetes.md has the table and the reasons):
* one Pod per IPC namespace (``labctl.export.k8s.pods``); ``ipc: host`` -> ``hostIPC: true``;
* ``shm_size`` -> an ``emptyDir`` of ``medium: Memory`` with ``sizeLimit`` at /dev/shm in
  every container of the pod; IPC ``sysctls`` -> the pod's ``securityContext.sysctls``;
* a volume used within one pod -> ``emptyDir`` (``tmpfs-volume``: ``medium: Memory``), used
  by several pods -> a PersistentVolumeClaim (ReadWriteOnce) and pod affinity that keeps
  those pods on one node (a shared mapping is one node's page cache);
* ``after``: ``exited`` in the same pod -> an init container; other conditions -> a startup
  wait (``--wait`` of the shmlab readers: ``after="wait"``) or a native sidecar init
  container (``restartPolicy: Always``, Kubernetes 1.29+: ``after="sidecar"``) for the
  awaited container, plus the reader's wait for the event itself;
* labels ``io.labctl.*`` (run-id ``export``), hardened container securityContext
  (the runner's: uid 65534 for workloads, read-only root, no capabilities, no privilege
  escalation), ``resources.limits.memory``; the pids limit has no Pod API field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml

from labctl.export.hardening import k8s_runtime_class, k8s_security
from labctl.export.k8s.pods import PodPlan, plan_pods, same_pod, volume_users
from labctl.runtime.labels import POD_CONTAINERS, ROLE, SCENARIO, SCENARIO_FILE, labels_for
from labctl.runtime.labels import RUN_ID as RUN_ID_LABEL
from labctl.scenario.actions.go import export_args
from labctl.scenario.model import WORKLOAD_IMAGE_REPO, ContainerSpec, Scenario

AfterMode = Literal["wait", "sidecar"]
RUN_ID = "export"
WORKLOAD_UID = 65534  # nobody, as labctl's runner runs workloads
MEMORY_LIMIT = "256Mi"  # the runner's default --memory 256m
PVC_SIZE = "64Mi"
# shmlab readers that take --wait D (retry until the writer's object exists, sized)
WAITING = {"sysv-reader", "mmap-reader", "posix-reader", "devshm-map"}
DEFAULT_IMAGE = f"{WORKLOAD_IMAGE_REPO}:latest"



def _name(*parts: str) -> str:
    """A DNS-1123 label from ``parts`` (at most 63 characters; a long one keeps its ends)."""
    text = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(text) > 63:
        import hashlib

        text = text[:54].rstrip("-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return text


def pod_name(s: Scenario, owner: str, run_id: str = RUN_ID) -> str:
    """``<scenario>-<owner>``; with a run id of its own, ``<run8>-<scenario>-<owner>``."""
    return _name(*_prefix(run_id), s.name, owner)


def claim_name(s: Scenario, volume: str, run_id: str = RUN_ID) -> str:
    """``labctl-<scenario>-<volume>``; with a run id, ``labctl-<run8>-<scenario>-<volume>``."""
    return _name("labctl", *_prefix(run_id), s.name, volume)


def _prefix(run_id: str) -> tuple[str, ...]:
    return () if run_id == RUN_ID else (run_id[:8],)


def _mib(n: int) -> str:
    return f"{n}" if n % (1 << 20) else f"{n >> 20}Mi"


def _labels(s: Scenario, role: str, run_id: str, user: dict[str, str] | None = None) -> dict[str, str]:
    return labels_for(run_id, s.name, role, user, owner=False)


def _wait_seconds(s: Scenario, c: ContainerSpec) -> str:
    return f"{int(min(s.timeout, c.timeout))}s"


def _args(s: Scenario, c: ContainerSpec, pods: list[PodPlan], pod: PodPlan, notes: list[str]) -> list[str]:
    """The shmlab command line of workload ``c``, with a startup wait where ``after`` needs one."""
    args = [c.workload or "", *export_args(c.args)]
    waits = [a for a in c.after if a.condition != "exited" and a.container not in pod.init]
    events = [a for a in waits if a.condition != "started"]
    if not events:
        return args
    apart = [a for a in events if not _reachable(s, pods, c, a.container)]
    if apart:
        notes.append(f"{c.name}: labctl starts it once {apart[0].container} reached '{apart[0].value}'; its pod "
                     f"shares nothing with {apart[0].container}'s (no IPC namespace, no volume), so it starts "
                     "on its own")
        events = [a for a in events if a not in apart]
        if not events:
            return args
    if c.workload in WAITING:
        if "--wait" not in c.args:
            args += ["--wait", _wait_seconds(s, c)]
        notes.append(f"{c.name}: labctl starts it once {events[0].container} reached '{events[0].value or events[0].condition}'; "
                     "here it waits itself (--wait) for the object it opens")
    else:
        notes.append(f"{c.name}: labctl starts it once {events[0].container} reached "
                     f"'{events[0].value or events[0].condition}'; Kubernetes starts it with the pod (no wait)")
    return args


def _platform_image(c: ContainerSpec, image: str, platform_images: dict[str, str], notes: list[str]) -> str:
    """``image`` for the native platform; for ``platform: P`` the per-platform tag labctl's
    build gives it (``REF-<suffix>``, e.g. ``labctl/shmlab:latest-arm64``), unless ``image``
    already names one."""
    from labctl.images import platforms

    plat = platforms.lookup(c.platform) if c.platform else None
    if plat is None or image.endswith(f"-{plat.suffix}"):
        return image
    native = platforms.lookup(f"linux/{_host_arch()}")
    if plat == native:
        return image
    notes.append(f"{c.name}: runs {plat.name} code: on a node of another architecture it needs emulation "
                 "(qemu-user-static registered in binfmt_misc with the F flag)")
    return platform_images.get(plat.name) or f"{image}-{plat.suffix}"


def _host_arch() -> str:
    from labctl.images.build import host_arch

    return {"x86_64": "amd64", "aarch64": "arm64"}.get(host_arch(), host_arch())


def _reachable(s: Scenario, pods: list[PodPlan], c: ContainerSpec, other: str) -> bool:
    """Whether ``c`` can see what ``other`` makes: one pod, two host-IPC pods, or a common volume."""
    if same_pod(pods, c.name, other):
        return True
    host = {x.name for p in pods if p.ipc == "host" for x in p.containers}
    if {c.name, other} <= host:
        return True
    mine = {m.source for m in c.mounts if m.source is not None}
    return bool(mine & {m.source for m in s.container(other).mounts if m.source is not None})


def _security(c: ContainerSpec) -> dict[str, Any]:
    sc: dict[str, Any] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": c.read_only,
                          "capabilities": {"drop": ["ALL"], **({"add": list(c.cap_add)} if c.cap_add else {})}}
    uid: str | None = c.user if c.user is not None else (f"{WORKLOAD_UID}:{WORKLOAD_UID}" if c.workload else None)
    if uid is not None:
        user, _, group = uid.partition(":")
        if user.isdigit():
            sc["runAsUser"] = int(user)
            sc["runAsNonRoot"] = int(user) != 0
        if group.isdigit():
            sc["runAsGroup"] = int(group)
    if c.privileged:
        sc = {"privileged": True}
    return sc


def _container(s: Scenario, c: ContainerSpec, pod: PodPlan, pods: list[PodPlan], image: str,
               vol_names: dict[str, str], notes: list[str], platform_images: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": c.name}
    if c.workload is not None:
        body["image"] = _platform_image(c, image, platform_images, notes)
        body["imagePullPolicy"] = "IfNotPresent"
        body["args"] = _args(s, c, pods, pod, notes)
    else:
        body["image"] = c.image
        if c.entrypoint is not None:
            body["command"] = list(c.entrypoint)
        if c.command is not None:
            body["args"] = list(c.command)
    if c.env:
        body["env"] = [{"name": k, "value": v} for k, v in c.env]
    mounts = []
    for i, m in enumerate(c.mounts):
        if m.tmpfs:
            mounts.append({"name": _name("tmp", c.name, str(i)), "mountPath": m.target})
        elif m.source is not None:
            mounts.append({"name": vol_names[m.source], "mountPath": m.target, **({"readOnly": True} if m.read_only else {})})
    if pod.shm_size is not None or _devshm_options(pod):
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if mounts:
        body["volumeMounts"] = mounts
    body["securityContext"] = k8s_security(c, _security(c), notes)
    memory = getattr(c, "memory", None)
    body["resources"] = {"limits": {"memory": _mib(memory) if memory else MEMORY_LIMIT}}
    return body


def _devshm_options(pod: PodPlan) -> list[str]:
    """The ``shm_options`` of the pod's containers (one /dev/shm per pod in Kubernetes)."""
    return list(dict.fromkeys(o for c in pod.containers for o in c.shm_options))


def _pod(s: Scenario, pod: PodPlan, pods: list[PodPlan], image: str, shared: set[str],
         after: AfterMode, run_id: str, platform_images: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    vol_names = {v.name: _name("vol", v.name) for v in s.volumes}
    volumes: list[dict[str, Any]] = []
    used = sorted({m.source for c in pod.containers for m in c.mounts if m.source is not None and not m.tmpfs})
    for vname in used:
        v = next(x for x in s.volumes if x.name == vname)
        if vname in shared:
            volumes.append({"name": vol_names[vname], "persistentVolumeClaim": {"claimName": claim_name(s, vname, run_id)}})
        elif v.type == "tmpfs-volume":
            volumes.append({"name": vol_names[vname], "emptyDir": {"medium": "Memory",
                                                                   **({"sizeLimit": _mib(v.size)} if v.size else {})}})
        else:
            volumes.append({"name": vol_names[vname], "emptyDir": {}})
    for c in pod.containers:
        volumes += [{"name": _name("tmp", c.name, str(i)), "emptyDir": {"medium": "Memory"}}
                    for i, m in enumerate(c.mounts) if m.tmpfs]
        for m in c.mounts:
            if m.tmpfs and m.options:
                notes.append(f"{c.name}: tmpfs {m.target} options {','.join(m.options)}: an emptyDir takes no mount "
                             "options (the kubelet mounts a Memory emptyDir without noexec, mode 0777)")
    shm_opts = _devshm_options(pod)
    if pod.shm_size is not None or shm_opts:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory",
                                                     "sizeLimit": _mib(pod.shm_size or 64 * 1024 * 1024)}})
    if shm_opts:
        notes.append(f"shm_options {', '.join(shm_opts)}: an emptyDir takes no mount options; the kubelet mounts a "
                     "Memory emptyDir without noexec (so exec holds), mode 0777; uid/gid: the pod's fsGroup sets the group")
    # Kubernetes starts init containers first, one by one; 'exited' ones run to completion,
    # sidecars (after=sidecar) are the containers others wait for, kept running.
    awaited = {a.container for c in pod.containers for a in c.after if a.condition != "exited"}
    members = {c.name for c in pod.containers}
    sidecars = {n for n in awaited if n in members and n not in pod.init} if after == "sidecar" else set()
    init, main = [], []
    for c in pod.containers:
        body = _container(s, c, pod, pods, image, vol_names, notes, platform_images)
        if c.name in pod.init:
            init.append(body)
            notes.append(f"{c.name}: an init container: the others start once it exited "
                         "(Kubernetes requires exit 0; labctl accepts any status)")
        elif c.name in sidecars:
            init.append({**body, "restartPolicy": "Always"})
        else:
            main.append(body)
    if pod.restart != "Never" and any(getattr(c, "restart", "no") == "no" for c in pod.containers):
        notes.append(f"restartPolicy {pod.restart} is the pod's: it applies to every container of the pod, "
                     "also those labctl runs without a restart policy")
    for c in pod.containers:
        if ":" in getattr(c, "restart", ""):
            notes.append(f"{c.name}: restart {c.restart}: a Pod has no retry count (the kubelet backs off)")
        if getattr(c, "memory_swap", None) is not None:
            notes.append(f"{c.name}: memory_swap has no Pod field (swap is the node's setting)")
    spec: dict[str, Any] = {"restartPolicy": pod.restart, "activeDeadlineSeconds": int(s.timeout),
                            "automountServiceAccountToken": False, "enableServiceLinks": False}
    if pod.ipc == "host":
        spec["hostIPC"] = True
    if any(c.pid == "host" for c in pod.containers):
        spec["hostPID"] = True
    if any(c.pid and c.pid.startswith("container:") for c in pod.containers):
        spec["shareProcessNamespace"] = True
    psc: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    gids = [o.split("=", 1)[1] for o in shm_opts if o.startswith("gid=")]
    if gids:
        psc["fsGroup"] = int(gids[0])
    userns = {c.userns for c in pod.containers if c.userns}
    if userns:
        # hostUsers: false is the pod's own user namespace (Podman's auto; keep-id maps the
        # user's uid, which a pod expresses with runAsUser inside its own namespace)
        spec["hostUsers"] = userns == {"host"}
        if len(userns) > 1:
            notes.append(f"containers of one pod ask for user namespaces {', '.join(sorted(userns))}: a pod has one")
    runtime_class = k8s_runtime_class(list(pod.containers), notes)
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if pod.sysctls:
        psc["sysctls"] = [{"name": k, "value": v} for k, v in pod.sysctls]
    spec["securityContext"] = psc
    if init:
        spec["initContainers"] = init
    spec["containers"] = main
    if volumes:
        spec["volumes"] = volumes
    if any(v in shared for v in used):
        spec["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {SCENARIO: s.name, RUN_ID_LABEL: run_id}},
            "topologyKey": "kubernetes.io/hostname"}]}}
    owner = s.container(pod.owner)
    meta = {"name": pod_name(s, pod.owner, run_id), "labels": _labels(s, pod.owner, run_id, dict(owner.labels)),
            "annotations": {POD_CONTAINERS: ",".join(c.name for c in pod.containers), SCENARIO_FILE: s.file}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}, notes


def manifests(s: Scenario, *, image: str = DEFAULT_IMAGE, after: AfterMode = "wait",
              run_id: str = RUN_ID, platform_images: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The objects for scenario ``s``: PersistentVolumeClaims first, then one Pod per IPC
    namespace. ``run_id`` labels them (``io.labctl.run-id``) and, unless the default
    ``export``, prefixes their names with its first 8 characters (several copies side by
    side). ``platform_images``: the image of each other OCI platform a ``platform:``
    container names (default: ``image`` with the platform's tag suffix). Raises
    ScenarioErrors (exit 2) for what a Pod cannot express."""
    return [obj for obj, _ in _objects(s, image, after, run_id, platform_images)]


def _objects(s: Scenario, image: str, after: AfterMode, run_id: str,
             platform_images: dict[str, str] | None = None) -> list[tuple[dict[str, Any], list[str]]]:
    pods = plan_pods(s)
    shared = {v for v, owners in volume_users(pods).items() if len(owners) > 1}
    out: list[tuple[dict[str, Any], list[str]]] = []
    for v in s.volumes:
        if v.name in shared:
            size = _mib(v.size) if v.size else PVC_SIZE
            out.append(({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": claim_name(s, v.name, run_id),
                                      "labels": _labels(s, f"volume-{v.name}", run_id)},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}},
                        [f"volume '{v.name}' is shared by several pods: a claim, and pod affinity keeps them "
                         "on one node (a shared mapping is one node's page cache)"]))
    out += [_pod(s, p, pods, image, shared, after, run_id, platform_images or {}) for p in pods]
    return out


def render(s: Scenario, *, image: str = DEFAULT_IMAGE, after: AfterMode = "wait", run_id: str = RUN_ID,
           platform_images: dict[str, str] | None = None) -> str:
    """A multi-document YAML stream for ``s``, with comments saying what differs from ``labctl run``."""
    head = [f"# Generated by `labctl export k8s {s.file}` (scenario '{s.name}').",
            "# Checks are not rendered: read the containers' output with kubectl logs (docs/kubernetes.md)."]
    if any(c.network == "none" for c in s.containers):
        head.append("# network: none has no Pod equivalent: every pod gets the cluster network.")
    docs = []
    for obj, notes in _objects(s, image, after, run_id, platform_images):
        docs.append("".join(f"# {n}\n" for n in notes)
                    + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=1000))
    return "\n".join(head) + "\n" + "---\n".join(docs)


__all__ = ["manifests", "render", "pod_name", "claim_name", "same_pod", "ROLE"]
