"""Read a user's stack (Compose files, Kubernetes manifests) into the IPC topology model.

``load(paths)`` reads each path (``-``: standard input) on its own; ``load(files=[...])``
reads several Compose files as one project, as ``docker compose -f a -f b`` does. The
result, a :class:`~labctl.stack.topology.Topology`, says which containers share an IPC
namespace and which /dev/shm, with their volumes, users, memory limits, restart policies,
runtimes and sysctls, each value located FILE:LINE:COL. No engine is contacted.

Errors (unreadable input, not YAML, neither a Compose file nor a manifest, an unknown
kind, a file over the size limit, an anchor bomb, ``${VAR?err}`` unset) are
:class:`labctl.errors.ScenarioErrors` (exit 2), located.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.stack import compose_spec as _compose
from labctl.stack import manifests as _k8s
from labctl.stack import merge as _merge
from labctl.stack.interpolate import project_env
from labctl.stack.topology import Container, Loc, Mount, Namespace, Topology, V, human
from labctl.stack.yamlpos import MAX_BYTES, Node, at, decode, error, load_documents

__all__ = ["load", "render_topology", "Topology", "Container", "Namespace", "Mount", "Loc", "V", "STDIN"]

STDIN = "<stdin>"
_IGNORE = re.compile(r"#\s*labctl:\s*ignore=([A-Za-z0-9_,\- ]+)")


def _read(path: str) -> tuple[str, str]:
    """(file label, text) of ``path`` (``-``: standard input)."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
        return STDIN, decode(data, STDIN)
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise error(path, None, None, "", f"file is {size} bytes; labctl check reads at most {MAX_BYTES} bytes "
                                              "per input (split it)")
        if os.path.isdir(path):
            raise error(path, None, None, "", "is a folder: name the Compose files or manifests in it")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise error(path, None, None, "", f"cannot read: {e.strerror or e}") from None
    return path, decode(data, path)


def _suppressions(file: str, text: str, into: dict[tuple[str, int], set[str]]) -> None:
    if "labctl:" not in text:
        return
    lines = text.splitlines()
    for i, line in enumerate(lines, start=1):
        m = _IGNORE.search(line)
        if not m:
            continue
        rules = {r.strip() for r in m.group(1).split(",") if r.strip()}
        into.setdefault((file, i), set()).update(rules)
        if line.lstrip().startswith("#"):  # a comment on its own line covers the next line too
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("#"):
                j += 1
            into.setdefault((file, j + 1), set()).update(rules)


def load(paths: Sequence[str] = (), *, files: Sequence[str] = (), profiles: Iterable[str] = (),
         environ: Mapping[str, str] | None = None, env_file: str | None = None) -> Topology:
    """The topology of every input: each of ``paths`` on its own, and ``files`` (if any)
    merged into one Compose project. ``profiles``: enabled Compose profiles (default:
    ``COMPOSE_PROFILES``). ``environ``: interpolation variables (default: the process
    environment, over each project's ``.env``). Raises ScenarioErrors (exit 2)."""
    env_src = os.environ if environ is None else environ
    prof = list(profiles) or [p for p in env_src.get("COMPOSE_PROFILES", "").split(",") if p]
    topo = Topology()
    errors: list[ScenarioError] = []
    texts: dict[str, str] = {}

    def read_docs(path: str) -> tuple[str, list[Node]]:
        label, text = _read(path)
        texts[label] = text
        topo.inputs.append(label)
        _suppressions(label, text, topo.suppressed)
        return label, load_documents(text, label)

    def env_for(label: str) -> dict[str, str]:
        folder = None if label == STDIN else Path(label).resolve().parent
        return project_env(folder, env_src, Path(env_file) if env_file else None)

    cache: dict[str, Node] = {}

    def compose_file(path: str, env: dict[str, str]) -> Node:
        """An interpolated, extended Compose document (for ``extends: {file: ...}`` too)."""
        key = os.path.abspath(path)
        if key not in cache:
            label, docs = read_docs(path)
            doc = _single_compose(label, docs)
            doc = _compose.interpolate(doc, env, topo.notes)
            _compose.check_shape(doc)
            cache[key] = doc
            cache[key] = _merge.resolve_extends(doc, lambda p: compose_file(p, env))
        return cache[key]

    def project_name(label: str) -> str:
        if label == STDIN:
            return "stdin"
        return env_src.get("COMPOSE_PROJECT_NAME") or Path(label).resolve().parent.name or "project"

    try:
        if files:
            env = env_for(files[0])
            docs = [compose_file(f, env) for f in files]
            merged = _merge.merge_projects(docs)
            _add_compose(topo, merged, project_name(files[0]), prof)
        for path in paths:
            try:
                label, docs = read_docs(path)
                if not docs:
                    raise error(label, 1, 1, "", "empty input: expected a Compose file or Kubernetes manifests")
                if any(_compose.is_compose(d) for d in docs):
                    doc = _single_compose(label, docs)
                    env = env_for(label)
                    doc = _compose.interpolate(doc, env, topo.notes)
                    _compose.check_shape(doc)
                    doc = _merge.resolve_extends(doc, lambda p: compose_file(p, env))
                    _add_compose(topo, doc, project_name(label), prof)
                else:
                    _add_manifests(topo, docs)
            except ScenarioErrors as e:
                errors += e.errors
    except ScenarioErrors as e:
        errors += e.errors
    if errors:
        raise ScenarioErrors(errors)
    return topo


def _single_compose(label: str, docs: list[Node]) -> Node:
    if not docs:
        raise error(label, 1, 1, "", "empty file: expected a Compose file (services: ...)")
    for d in docs:
        if not d.is_map or not _compose.is_compose(d):
            what = "a Kubernetes object" if _k8s.is_manifest(d) else "not a Compose file"
            raise at(d, "", f"{what} in a Compose file's stream: a Compose file is one document with services:")
    if len(docs) > 1:
        raise at(docs[1], "", "a Compose file is one YAML document (split the stream, or use -f for several files)")
    return docs[0]


def _add_manifests(topo: Topology, docs: list[Node]) -> None:
    for d in docs:
        if not d.is_map:
            raise at(d, "", "not a Compose file or Kubernetes manifest: expected a mapping at the top level")
        if not _k8s.is_manifest(d):
            keys = ", ".join(list(d.value)[:4])
            raise at(d, "", f"not a Compose file or Kubernetes manifest: no 'services:' and no 'apiVersion'/'kind' "
                            f"(top-level keys: {keys})")
        for label, obj, spec in _k8s.pod_specs(d, topo.skipped):
            ns, members = _k8s.pod(label, obj, spec)
            if any(n.id == ns.id for n in topo.namespaces):
                ns.id = f"{ns.id}@{obj.file}:{obj.line}"
                for m in members:
                    m.namespace = ns.id
            topo.namespaces.append(ns)
            topo.containers += members


def _add_compose(topo: Topology, doc: Node, project: str, profiles: list[str]) -> None:
    taken = {n.group for n in topo.namespaces}
    if project in taken:  # two inputs from one folder: two projects
        project = next(f"{project}#{i}" for i in range(2, 10_000) if f"{project}#{i}" not in taken)
    cs = _compose.containers(doc, project, profiles)
    by = {c.name: c for c in cs}
    by.update({c.extra["container_name"]: c for c in cs if "container_name" in c.extra})
    services = doc.value["services"]
    for c in cs:
        c.group = project
    # each container's namespace: follow service:/container: to the donor
    for c in cs:
        seen = [c.name]
        cur = c
        while cur.joins is not None:
            nxt = by.get(cur.joins)
            if nxt is None:
                ipc_val = cur.ipc.value if cur.ipc else ""
                if ipc_val.startswith("service:"):
                    inactive = cur.joins in services.value
                    why = "is not enabled (profiles)" if inactive else "is not defined"
                    raise error(cur.ipc.loc.file, cur.ipc.loc.line, cur.ipc.loc.col, f"services.{cur.name}.ipc",
                                f"service '{cur.joins}' {why}")
                cur = None
                break
            if nxt.name in seen:
                raise error(c.ipc.loc.file, c.ipc.loc.line, c.ipc.loc.col, f"services.{c.name}.ipc",
                            "circular ipc: " + " -> ".join([*seen, nxt.name]))
            seen.append(nxt.name)
            cur = nxt
        c.namespace = f"{project}/{cur.name}" if cur is not None else f"{project}/external:{c.joins}"
    for c in cs:
        if c.namespace in {n.id for n in topo.namespaces}:
            continue
        holder_name = c.namespace.split("/", 1)[1]
        holder = by.get(holder_name)
        if holder is None:  # container:NAME outside the project
            ns = Namespace(c.namespace, "external", project, holder_name, devshm=None)
        else:
            mode = holder.ipc.value if holder.ipc is not None else None
            kind = {"shareable": "shareable", "host": "host", "none": "none"}.get(mode or "", "private")
            ns = Namespace(c.namespace, kind, project, holder.name, loc=holder.loc)
            ns.restart_policy = holder.restart
            if kind == "host":
                ns.host_ipc = V(True, holder.ipc.loc)  # type: ignore[union-attr]
                ns.devshm = None
            elif kind == "none":
                ns.devshm = 0
            elif holder.shm_size is not None:
                ns.devshm, ns.devshm_loc = holder.shm_size.value, holder.shm_size.loc
            ns.sysctls = list(holder.sysctls)
        topo.namespaces.append(ns)
    for ns in topo.namespaces:
        if ns.group == project and not ns.members:
            ns.members = [c for c in cs if c.namespace == ns.id]
    topo.containers += cs


def render_topology(topo: Topology) -> str:
    """The topology as text: one block per IPC namespace, one line per container."""
    out: list[str] = []
    groups: dict[str, list[Namespace]] = {}
    for ns in topo.namespaces:
        groups.setdefault(ns.group, []).append(ns)
    for group, nss in groups.items():
        first = nss[0].members[0] if nss and nss[0].members else None
        src = first.loc.file if first else "?"
        kind = "Compose project" if first is not None and first.source == "compose" else "pod"
        out.append(f"{src}: {kind} {group}")
        for ns in nss:
            if ns.devshm == 0:
                shm = "no /dev/shm"
            elif ns.devshm is None:
                shm = "/dev/shm unbounded" if ns.kind != "host" else "the host's /dev/shm"
            else:
                shm = f"/dev/shm {human(ns.devshm)}" + ("" if ns.devshm_loc else " (default)")
            extra = []
            if ns.runtime_class is not None:
                extra.append(f"runtimeClassName {ns.runtime_class.value}")
            if ns.restart_policy is not None and ns.members and ns.members[0].source == "k8s":
                extra.append(f"restartPolicy {ns.restart_policy.value}")
            for k, v in ns.sysctls:
                extra.append(f"{k.value}={v}")
            who = f"held by {ns.holder}" if ns.holder else "held by the pod sandbox" if ns.kind == "pod" else ""
            out.append(f"  IPC namespace {ns.id} [{ns.kind}] {who}; {shm}" + (f"; {', '.join(extra)}" if extra else ""))
            for c in ns.members:
                bits = [f"ipc {c.ipc.value}" if c.ipc else "ipc (engine default)" if c.source == "compose" else ""]
                if c.user is not None:
                    bits.append(f"user {c.user.value}")
                if c.memory is not None:
                    bits.append(f"memory {human(c.memory.value)}")
                if c.shm_size is not None:
                    bits.append(f"shm_size {human(c.shm_size.value)}")
                if c.shm_use is not None:
                    bits.append(f"writes {human(c.shm_use.value)} to /dev/shm")
                if c.restart is not None:
                    bits.append(f"restart {c.restart.value}")
                if c.runtime is not None:
                    bits.append(f"runtime {c.runtime.value}")
                for m in c.mounts:
                    src = f"{m.source}:" if m.source else ""
                    size = f" {human(m.size)}" if m.size is not None else ""
                    bits.append(f"{m.kind} {src}{m.target.value}{size}" + (" ro" if m.read_only else ""))
                label = f"{c.name} (init)" if c.extra.get("init") else c.name
                out.append(f"    {label} @ {c.loc.line}:{c.loc.col}: " + "; ".join(b for b in bits if b))
    for where, what in topo.skipped:
        out.append(f"{where}: skipped {what}")
    return "\n".join(out) + ("\n" if out else "")
