"""Read Kubernetes manifests into a :class:`~labctl.importer.services.Stack`.

A pod is one IPC namespace and one /dev/shm, held by its sandbox (the pause container),
shared by all its containers. So each pod becomes a holder (the ``hold`` workload, IPC
shareable, /dev/shm sized by an ``emptyDir`` of ``medium: Memory`` mounted there) that its
containers join, unless ``hostIPC: true`` puts them in the host's namespace. Pods and the
pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs are
read; init containers run first (the others start once they exited), native sidecars
(``restartPolicy: Always``) start first and keep running.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.importer.services import Mount, Note, Service, Stack, Volume
from labctl.importer.yamltree import Y, from_stack_node, read_text
from labctl.scenario.model import WORKLOAD_IMAGE_REPO, Pos
from labctl.stack.manifests import is_manifest, pod_specs
from labctl.stack.yamlpos import load_documents

HOLDER_IMAGE = f"{WORKLOAD_IMAGE_REPO}:latest"
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T|m)?\s*$")
FACTOR = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
          "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 0.001}
# container keys that change nothing a scenario runs (probes, ports, pull policy...)
QUIET = {"name", "image", "command", "args", "env", "volumeMounts", "securityContext", "resources", "ports",
         "imagePullPolicy", "livenessProbe", "readinessProbe", "startupProbe", "terminationMessagePath",
         "terminationMessagePolicy", "restartPolicy", "stdin", "tty", "lifecycle"}


def quantity(y: Y, notes: list[Note], key: str) -> int | None:
    """A Kubernetes memory quantity (``64Mi``, ``1G``, ``134217728``) in bytes."""
    m = QUANTITY.match(str(y.value))
    if not m:
        notes.append(Note(y.pos, key, f"{y.value!r} is not a memory quantity: left out"))
        return None
    return int(float(m.group(1)) * FACTOR[m.group(2)])


class PodReader:
    def __init__(self, notes: list[Note], volumes: dict[str, Volume], taken: set[str]) -> None:
        self.notes = notes
        self.volumes = volumes
        self.taken = taken

    def name(self, want: str) -> str:
        name, i = want, 2
        while name in self.taken:
            name, i = f"{want}-{i}", i + 1
        self.taken.add(name)
        return name

    def read(self, pod: str, spec: Y, doc: Y) -> list[Service]:
        notes = self.notes
        host_ipc = spec.get("hostIPC") is not None and bool(spec.get("hostIPC").value)  # type: ignore[union-attr]
        restart = RESTART.get(str(spec.get("restartPolicy").value), "always") if spec.get("restartPolicy") else "always"  # type: ignore[union-attr]
        psc = spec.get("securityContext")
        vols = self._volumes(pod, spec)
        shm: int | None = None
        for key in ("shareProcessNamespace", "hostNetwork", "hostPID"):
            if spec.get(key) is not None and spec.get(key).value:  # type: ignore[union-attr]
                notes.append(Note(spec.at(key), f"spec.{key}", "not carried by a scenario: left out"))
        holder_name = self.name(pod)
        sysctls: tuple[tuple[str, str], ...] = ()
        if psc is not None and psc.get("sysctls") is not None:
            sysctls = tuple((str(i.get("name").value), str(i.get("value").value))  # type: ignore[union-attr]
                            for i in psc.get("sysctls").value if i.get("name") and i.get("value"))  # type: ignore[union-attr]
        out: list[Service] = []
        init = spec.get("initContainers")
        before: list[tuple[str, str, Any]] = []
        for group, sidecar_ok in ((init, True), (spec.get("containers"), False)):
            for c in (group.value if group is not None and group.is_seq else []):
                sidecar = sidecar_ok and c.get("restartPolicy") is not None and c.get("restartPolicy").value == "Always"  # type: ignore[union-attr]
                svc, shm_size = self._container(pod, c, psc, vols, restart if not sidecar_ok or sidecar else "no")
                if shm_size is not None:
                    shm = shm_size
                ipc = "host" if host_ipc else f"service:{holder_name}"
                svc = _with(svc, ipc=ipc, depends=tuple(before))
                out.append(svc)
                if group is init:
                    before.append((svc.name, "started" if sidecar else "exited", c.pos))
        if not out:
            raise ScenarioErrors([ScenarioError(spec.pos.file, spec.pos.line, spec.pos.col, "spec.containers",
                                                "a pod without containers")])
        if host_ipc:
            self.taken.discard(holder_name)
            if sysctls:
                notes.append(Note(psc.at("sysctls"), "spec.securityContext.sysctls",  # type: ignore[union-attr]
                                  "IPC sysctls cannot be set with hostIPC: left out"))
            return out
        holder = Service(name=holder_name, image=HOLDER_IMAGE, command=("hold",), ipc="shareable", shm_size=shm,
                         sysctls=sysctls, read_only=True, holder=True, pos=doc.pos,
                         keys={"shm_size": doc.pos})
        return [holder, *out]

    def _volumes(self, pod: str, spec: Y) -> dict[str, tuple[str, str | None, int | None]]:
        """Pod volume name -> (kind, stack volume name, size): kind ``shm`` for a Memory
        emptyDir (its size limit), ``volume`` for the others carried, ``skip`` otherwise."""
        out: dict[str, tuple[str, str | None, int | None]] = {}
        vols = spec.get("volumes")
        for v in (vols.value if vols is not None and vols.is_seq else []):
            n = v.get("name")
            if n is None:
                continue
            name = str(n.value)
            if v.get("emptyDir") is not None:
                ed = v.get("emptyDir")
                mem = ed.is_map and ed.get("medium") is not None and ed.get("medium").value == "Memory"  # type: ignore[union-attr]
                size = quantity(ed.get("sizeLimit"), self.notes, f"volumes.{name}.emptyDir.sizeLimit") \
                    if ed.is_map and ed.get("sizeLimit") is not None else None  # type: ignore[arg-type]
                vname = f"{pod}-{name}"
                self.volumes[vname] = Volume(vname, "tmpfs" if mem else "volume", size, pos=v.pos)
                out[name] = ("memory" if mem else "volume", vname, size)
            elif v.get("persistentVolumeClaim") is not None:
                claim = v.get("persistentVolumeClaim").get("claimName")  # type: ignore[union-attr]
                vname = str(claim.value) if claim is not None else name
                self.volumes.setdefault(vname, Volume(vname, pos=v.pos))
                out[name] = ("volume", vname, None)
            elif v.get("hostPath") is not None:
                p = v.get("hostPath").get("path")  # type: ignore[union-attr]
                vname = f"{pod}-{name}"
                self.volumes[vname] = Volume(vname, "bind", path=str(p.value) if p is not None else "/", pos=v.pos)
                out[name] = ("volume", vname, None)
            else:
                kinds = [k for k in v.value if k != "name"]
                self.notes.append(Note(v.pos, f"volumes.{name}", f"a {kinds[0] if kinds else 'volume'} volume "
                                                                 "is not carried by a scenario: left out"))
                out[name] = ("skip", None, None)
        return out

    def _container(self, pod: str, c: Y, psc: Y | None, vols: dict[str, tuple[str, str | None, int | None]],
                   restart: str) -> tuple[Service, int | None]:
        notes = self.notes
        cname = str(c.get("name").value) if c.get("name") is not None else "container"  # type: ignore[union-attr]
        name = self.name(cname)
        for key in c.value:
            if key not in QUIET:
                notes.append(Note(c.at(key), f"containers.{cname}.{key}", "not carried by a scenario: left out"))
        kw: dict[str, Any] = {}
        if c.get("image") is not None:
            kw["image"] = str(c.get("image").value)  # type: ignore[union-attr]
        if c.get("command") is not None:
            kw["entrypoint"] = tuple(str(i.value) for i in c.get("command").value)  # type: ignore[union-attr]
        if c.get("args") is not None:
            kw["command"] = tuple(str(i.value) for i in c.get("args").value)  # type: ignore[union-attr]
        env = []
        for e in (c.get("env").value if c.get("env") is not None and c.get("env").is_seq else []):  # type: ignore[union-attr]
            if e.get("value") is not None and e.get("name") is not None:
                env.append((str(e.get("name").value), str(e.get("value").value)))  # type: ignore[union-attr]
            elif e.get("name") is not None:
                notes.append(Note(e.pos, f"containers.{cname}.env", f"{e.get('name').value}: only literal "  # type: ignore[union-attr]
                                                                    "values are carried: left out"))
        kw["env"] = tuple(env)
        sc = c.get("securityContext")
        uid = gid = None
        for ctx in (psc, sc):
            if ctx is not None and ctx.is_map:
                if ctx.get("runAsUser") is not None:
                    uid = ctx.get("runAsUser").value  # type: ignore[union-attr]
                if ctx.get("runAsGroup") is not None:
                    gid = ctx.get("runAsGroup").value  # type: ignore[union-attr]
        if uid is not None:
            kw["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
        if sc is not None and sc.is_map:
            if sc.get("readOnlyRootFilesystem") is not None:
                kw["read_only"] = bool(sc.get("readOnlyRootFilesystem").value)  # type: ignore[union-attr]
            if sc.get("privileged") is not None:
                kw["privileged"] = bool(sc.get("privileged").value)  # type: ignore[union-attr]
            caps = sc.get("capabilities")
            if caps is not None and caps.get("add") is not None:
                kw["cap_add"] = tuple(str(i.value) for i in caps.get("add").value)  # type: ignore[union-attr]
        res = c.get("resources")
        lim = res.get("limits") if res is not None and res.is_map else None
        if lim is not None and lim.get("memory") is not None:
            kw["memory"] = quantity(lim.get("memory"), notes, f"containers.{cname}.resources.limits.memory")  # type: ignore[arg-type]
        mounts = []
        shm = None
        for m in (c.get("volumeMounts").value if c.get("volumeMounts") is not None else []):  # type: ignore[union-attr]
            vn = str(m.get("name").value) if m.get("name") is not None else ""  # type: ignore[union-attr]
            target = str(m.get("mountPath").value) if m.get("mountPath") is not None else ""  # type: ignore[union-attr]
            ro = m.get("readOnly") is not None and bool(m.get("readOnly").value)  # type: ignore[union-attr]
            kind, vname, size = vols.get(vn, ("skip", None, None))
            if m.get("subPath") is not None:
                notes.append(Note(m.at("subPath"), f"containers.{cname}.volumeMounts", "subPath is not carried: "
                                                                                     "the whole volume is mounted"))
            if target == "/dev/shm" and kind == "memory":
                shm = size if size is not None else 64 << 20
                if size is None:
                    notes.append(Note(m.pos, f"containers.{cname}.volumeMounts",
                                      "a Memory emptyDir without sizeLimit at /dev/shm: 64m here"))
                if vname:
                    self.volumes.pop(vname, None)
                continue
            if kind == "skip" or vname is None:
                continue
            mounts.append(Mount("volume" if kind != "bind" else "bind", vname, target, ro, None, m.pos))
        kw["mounts"] = tuple(mounts)
        kw["restart"] = restart
        keys = {"command": c.at("args"), "entrypoint": c.at("command"), "image": c.at("image"),
                "user": sc.at("runAsUser") if sc is not None else c.pos, "memory": c.at("resources"),
                "volumes": c.at("volumeMounts"), "environment": c.at("env")}
        return Service(name=name, keys=keys, pos=c.pos, **kw), shm


def _with(s: Service, **kw: Any) -> Service:
    return replace(s, **kw)


def read_k8s(path: str) -> Stack:
    """The pods of the manifests in ``path`` (a multi-document YAML stream; ``labctl.stack``
    finds the pod specs of Pods, Deployments, Jobs, CronJobs, Lists...) as a Stack.
    ScenarioErrors (exit 2) when it cannot be read, names an unknown kind, or holds no pod."""
    label = "<stdin>" if path == "-" else path
    docs = load_documents(read_text(path), label)
    notes: list[Note] = []
    volumes: dict[str, Volume] = {}
    reader = PodReader(notes, volumes, set())
    services: list[Service] = []
    first = ""
    skipped: list = []
    for doc in docs:
        if not doc.is_map or not is_manifest(doc):
            raise ScenarioErrors([ScenarioError(label, doc.line, doc.col, "",
                                                "not a Kubernetes manifest (no apiVersion/kind)")])
        for kind_name, obj, spec in pod_specs(doc, skipped):
            name = kind_name.split("/", 1)[1]
            name = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "pod"
            first = first or name
            o, sp = from_stack_node(obj), from_stack_node(spec)
            rep = o.get("spec").get("replicas") if o.get("spec") is not None else None  # type: ignore[union-attr]
            if rep is not None and rep.value not in (None, 1):
                notes.append(Note(rep.pos, "spec.replicas", "a scenario runs one copy of the pod"))
            services += reader.read(name, sp, o)
    if services:
        notes.append(Note(Pos(label, docs[0].line, docs[0].col), "spec",
                          "every pod gets the cluster network; labctl runs its containers with network none"))
    for where, what in skipped:
        if not what.startswith("PersistentVolumeClaim/"):
            notes.append(Note(Pos(where.file, where.line, where.col), "kind", f"{what}: not a pod: left out"))
    if not services:
        raise ScenarioErrors([ScenarioError(label, 1, 1, "", "no Pod and no pod template: nothing to import")])
    used = {m.source for s in services for m in s.mounts}
    vols = tuple(v for v in volumes.values() if v.name in used)
    return Stack("k8s", first or "pods", label, tuple(services), vols, tuple(notes),
                 Pos(label, docs[0].line, docs[0].col))
