"""Kubernetes manifests to containers and pod IPC namespaces of the topology model.

A pod is one IPC namespace (its sandbox holds it; ``hostIPC: true`` is the node's) with one
/dev/shm: 64 MB unless an ``emptyDir`` of ``medium: Memory`` is mounted at /dev/shm
(``sizeLimit`` bounds it; without one it is bounded only by memory). Pod specs are read
from Pods and from the pod templates of Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob and PodTemplate; ``kind: List`` is read item by item.
Other built-in kinds (Service, ConfigMap, ...) and custom resources (an API group outside
Kubernetes' own) are noted and skipped; an unknown kind of a built-in API group is an error.
"""

from __future__ import annotations

from typing import Iterator

from labctl.stack.compose_spec import SHM_USE_LABEL, key_loc, loc, shm_use_from_args, sysv_size_from_args
from labctl.stack.topology import DEFAULT_DEVSHM, Container, Loc, Mount, Namespace, V, compose_bytes, k8s_bytes
from labctl.stack.yamlpos import Node, at

# where the pod spec is, by kind
TEMPLATE_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
}

# Kinds of Kubernetes' own API groups that hold no pod spec (read and skipped).
OTHER_KINDS = {
    "v1": {"Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace", "PersistentVolumeClaim",
           "PersistentVolume", "Endpoints", "LimitRange", "ResourceQuota", "Node", "Event", "Binding",
           "ComponentStatus"},
    "apps": {"ControllerRevision"},
    "batch": set(),
    "autoscaling": {"HorizontalPodAutoscaler"},
    "policy": {"PodDisruptionBudget", "PodSecurityPolicy", "Eviction"},
    "networking.k8s.io": {"Ingress", "IngressClass", "NetworkPolicy", "IPAddress", "ServiceCIDR"},
    "rbac.authorization.k8s.io": {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"},
    "storage.k8s.io": {"StorageClass", "VolumeAttachment", "CSIDriver", "CSINode", "CSIStorageCapacity",
                       "VolumeAttributesClass"},
    "apiextensions.k8s.io": {"CustomResourceDefinition"},
    "admissionregistration.k8s.io": {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                                     "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
    "scheduling.k8s.io": {"PriorityClass"},
    "node.k8s.io": {"RuntimeClass"},
    "coordination.k8s.io": {"Lease"},
    "discovery.k8s.io": {"EndpointSlice"},
    "certificates.k8s.io": {"CertificateSigningRequest"},
    "events.k8s.io": {"Event"},
    "flowcontrol.apiserver.k8s.io": {"FlowSchema", "PriorityLevelConfiguration"},
    "apiregistration.k8s.io": {"APIService"},
}
BUILTIN_GROUPS = set(OTHER_KINDS)


def is_manifest(doc: Node) -> bool:
    return doc.is_map and ("apiVersion" in doc.value or "kind" in doc.value)


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else "v1"


def pod_specs(doc: Node, skipped: list[tuple[Loc, str]]) -> Iterator[tuple[str, Node, Node]]:
    """(``Kind/name``, the object, its pod spec) for each pod template in ``doc``."""
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if kind is None or not isinstance(kind.value, str):
        raise at(doc, "kind", "a Kubernetes object needs a string 'kind'")
    if api is None or not isinstance(api.value, str):
        raise at(doc, "apiVersion", "a Kubernetes object needs a string 'apiVersion'")
    k = kind.value
    if k == "List" or k.endswith("List") and doc.get("items") is not None:
        items = doc.get("items")
        if items is None or not items.is_seq:
            raise at(doc, "items", "a List needs a list of 'items'")
        for item in items.value:
            if not item.is_map:
                raise at(item, "items", "expected a Kubernetes object (a mapping)")
            yield from pod_specs(item, skipped)
        return
    meta = doc.get("metadata")
    name_node = meta.get("name") if meta is not None else None
    name = str(name_node.value) if name_node is not None and name_node.value is not None else "(unnamed)"
    group = _group(api.value)
    if k in TEMPLATE_PATHS:
        node = doc
        path = []
        for key in TEMPLATE_PATHS[k]:
            path.append(key)
            nxt = node.get(key)
            if nxt is None or not nxt.is_map:
                raise at(node, ".".join(path), f"a {k} needs a mapping at {'.'.join(TEMPLATE_PATHS[k])}")
            node = nxt
        yield f"{k}/{name}", doc, node
        return
    if group in BUILTIN_GROUPS:
        if k in OTHER_KINDS.get(group, set()):
            skipped.append((loc(kind), f"{k}/{name}"))
            return
        raise at(kind, "kind", f"unknown kind '{k}' for apiVersion {api.value} (not a Kubernetes kind; a typo?)")
    skipped.append((loc(kind), f"{k}/{name} (custom resource, not inspected)"))


def _get(node: Node | None, *keys: str) -> Node | None:
    for k in keys:
        if node is None:
            return None
        node = node.get(k)
    return node


def _words(node: Node | None) -> list[str]:
    if node is None or not node.is_seq:
        return []
    return [str(x.value) for x in node.value if x.value is not None]


def _int(node: Node | None) -> int | None:
    return node.value if node is not None and isinstance(node.value, int) and not isinstance(node.value, bool) else None


def pod(label: str, obj: Node, spec: Node) -> tuple[Namespace, list[Container]]:
    """The IPC namespace of one pod template and its containers."""
    ns = Namespace(id=label, kind="pod", group=label, holder=None, loc=loc(obj))
    host = spec.get("hostIPC")
    if host is not None and host.value is True:
        ns.kind = "host"
        ns.host_ipc = V(True, loc(host))
        ns.devshm = None
    rc = spec.get("runtimeClassName")
    if rc is not None and rc.value is not None:
        ns.runtime_class = V(str(rc.value), loc(rc))
    rp = spec.get("restartPolicy")
    if rp is not None and rp.value is not None:
        ns.restart_policy = V(str(rp.value), loc(rp))
    psc = spec.get("securityContext")
    sysctls = _get(psc, "sysctls")
    if sysctls is not None and sysctls.is_seq:
        for item in sysctls.value:
            n, v = item.get("name"), item.get("value")
            if n is not None:
                ns.sysctls.append((V(str(n.value), loc(n)), "" if v is None else str(v.value)))
    pod_uid, pod_gid = _int(_get(psc, "runAsUser")), _int(_get(psc, "runAsGroup"))
    groups = [x.value for x in (_get(psc, "supplementalGroups").value if _get(psc, "supplementalGroups") is not None
                                and _get(psc, "supplementalGroups").is_seq else []) if isinstance(x.value, int)]
    fs = _int(_get(psc, "fsGroup"))
    if fs is not None:
        groups.append(fs)
    volumes: dict[str, Node] = {}
    vnode = spec.get("volumes")
    if vnode is not None and vnode.is_seq:
        for v in vnode.value:
            n = v.get("name")
            if n is not None:
                volumes[str(n.value)] = v
    # which containers mount each volume (an emptyDir one container mounts is private to it)
    listed: list[tuple[str, Node]] = []
    for key in ("initContainers", "containers"):
        seq = spec.get(key)
        if seq is not None:
            if not seq.is_seq:
                raise at(seq, key, "expected a list of containers")
            listed += [(key, c) for c in seq.value]
    if not any(k == "containers" for k, _ in listed):
        raise at(spec, "containers", f"{label}: a pod spec needs at least one container")
    users: dict[str, set[str]] = {}
    for _, c in listed:
        for m in (_get(c, "volumeMounts").value if _get(c, "volumeMounts") is not None and _get(c, "volumeMounts").is_seq else []):
            vn = m.get("name")
            if vn is not None:
                users.setdefault(str(vn.value), set()).add(str(_get(c, "name").value if _get(c, "name") else ""))
    out: list[Container] = []
    for key, c in listed:
        if not c.is_map:
            raise at(c, key, "expected a container (a mapping)")
        nm = c.get("name")
        name = str(nm.value) if nm is not None else "(unnamed)"
        ct = Container(name=name, source="k8s", group=label, loc=loc(nm) if nm is not None else loc(c),
                       namespace=ns.id)
        if key == "initContainers":
            ct.extra["init"] = True
        csc = c.get("securityContext")
        uid_n = _get(csc, "runAsUser") or _get(psc, "runAsUser")
        gid_n = _get(csc, "runAsGroup") or _get(psc, "runAsGroup")
        ct.uid = _int(_get(csc, "runAsUser")) if _int(_get(csc, "runAsUser")) is not None else pod_uid
        ct.gid = _int(_get(csc, "runAsGroup")) if _int(_get(csc, "runAsGroup")) is not None else pod_gid
        if uid_n is not None:
            ct.user = V(f"{ct.uid}" + (f":{ct.gid}" if ct.gid is not None else ""), loc(uid_n))
        elif gid_n is not None:
            ct.user = V(f":{ct.gid}", loc(gid_n))
        ct.groups = list(groups)
        mem = _get(c, "resources", "limits", "memory")
        if mem is not None and mem.value is not None:
            try:
                ct.memory = V(k8s_bytes(mem.value), loc(mem))
            except ValueError as e:
                raise at(mem, f"{key}.{name}.resources.limits.memory", str(e)) from None
        mounts = _get(c, "volumeMounts")
        for m in (mounts.value if mounts is not None and mounts.is_seq else []):
            mp, vn = m.get("mountPath"), m.get("name")
            if mp is None or vn is None:
                continue
            vol = volumes.get(str(vn.value))
            mount = Mount(V(str(mp.value), loc(mp)), "other", source=str(vn.value), loc=loc(m),
                          read_only=bool(m.get("readOnly").value) if m.get("readOnly") is not None else False)
            if vol is not None:
                ed, hp = vol.get("emptyDir"), vol.get("hostPath")
                if ed is not None:
                    mount.kind = "emptydir" if len(users.get(mount.source or "", ())) > 1 else "tmpfs"
                    med = _get(ed, "medium")
                    mount.medium = str(med.value) if med is not None and med.value else None
                    sl = _get(ed, "sizeLimit")
                    if sl is not None and sl.value is not None:
                        try:
                            mount.size = k8s_bytes(sl.value)
                        except ValueError as e:
                            raise at(sl, "emptyDir.sizeLimit", str(e)) from None
                    mount.size_loc = loc(ed)
                elif hp is not None:
                    mount.kind = "hostpath"
                    p, t = hp.get("path"), hp.get("type")
                    mount.source = str(p.value) if p is not None else None
                    if t is not None and str(t.value) in ("File", "FileOrCreate"):
                        mount.file_hint = f"hostPath type {t.value}"
                else:
                    mount.kind = "volume"
            sp = m.get("subPath")
            if sp is not None and sp.value:
                mount.file_hint = mount.file_hint or f"subPath {sp.value}"
            ct.mounts.append(mount)
            if mount.target.value.rstrip("/") == "/dev/shm" and mount.kind in ("emptydir", "tmpfs") \
                    and mount.medium == "Memory" and ns.kind == "pod":
                ns.devshm = mount.size
                ns.devshm_loc = mount.size_loc or mount.loc
        env = c.get("env")
        envs = [str(e.value["value"].value) for e in (env.value if env is not None and env.is_seq else [])
                if e.is_map and e.get("value") is not None and e.value["value"].value is not None]
        ct.refs = _words(c.get("command")) + _words(c.get("args")) + envs
        ann = _get(obj, "metadata", "annotations", SHM_USE_LABEL)
        use = shm_use_from_args(_words(c.get("command")) + _words(c.get("args")))
        if use is not None:
            anchor = c.get("args") or c.get("command")
            ct.shm_use = V(use, loc(anchor)) if anchor is not None else None
        elif ann is not None and ann.value is not None:
            try:
                ct.shm_use = V(compose_bytes(ann.value), loc(ann))
            except ValueError:
                pass
        seg = sysv_size_from_args(_words(c.get("command")) + _words(c.get("args")))
        anchor = c.get("args") or c.get("command")
        if seg is not None and anchor is not None:
            ct.extra["sysv_segment"] = V(seg, loc(anchor))
        out.append(ct)
    ns.members = out
    if ns.kind == "pod" and ns.devshm_loc is None:
        ns.devshm = DEFAULT_DEVSHM
    return ns, out


__all__ = ["is_manifest", "pod_specs", "pod", "key_loc"]
