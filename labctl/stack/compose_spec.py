"""Compose files to containers of the IPC topology model.

What ``docker compose`` (v2) and ``docker-compose`` 1.29 do before they talk to the engine,
for the keys that matter to shared memory: variable interpolation (``.env``, ``${VAR:-x}``,
``${VAR?err}``, ``$$``), ``extends`` (same file or another), several files merged in order
(``-f a.yml -f b.yml``: mappings merged, ``command``/``entrypoint`` replaced, ``volumes``
merged by target, other lists appended), and ``profiles`` (a service with profiles is
left out unless one of them is enabled). Both syntaxes: ``version: "2.4"``-style keys
(``mem_limit``, ``shm_size``) and v3/spec ones (``deploy.resources.limits.memory``).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Iterable

from labctl.runtime.labels import SHM_USE
from labctl.stack.interpolate import Interpolator
from labctl.stack.merge import as_map, services_of
from labctl.stack.topology import Container, Loc, Mount, V, compose_bytes
from labctl.stack.yamlpos import Node, at

SHM_USE_LABEL = SHM_USE  # a label (Compose) or an annotation (Kubernetes)
# labctl's own workloads that write N bytes into /dev/shm (``--size N``)
SHM_WRITERS = {"posix-writer", "devshm-fill"}



def is_compose(doc: Node) -> bool:
    """A mapping with a ``services:`` key (the Compose spec, and versions 2.x/3.x)."""
    return doc.is_map and "services" in doc.value


def loc(node: Node) -> Loc:
    return Loc(node.file, node.line, node.col)


def key_loc(parent: Node, key: str) -> Loc:
    line, col = parent.key_pos(key)
    return Loc(parent.file, line, col)


# ---------------------------------------------------------------- profiles

def active(svc: Node, profiles: Iterable[str]) -> bool:
    """A service without ``profiles:`` always runs; one with them only when enabled."""
    p = svc.get("profiles")
    if p is None or not p.is_seq or not p.value:
        return True
    wanted = set(profiles)
    return "*" in wanted or any(str(x.value) in wanted for x in p.value)


# ---------------------------------------------------------------- to the model

def _words(node: Node | None) -> list[str]:
    if node is None or node.value is None:
        return []
    if node.is_seq:
        return [str(x.value) for x in node.value if x.value is not None]
    try:
        return shlex.split(str(node.value))
    except ValueError:
        return str(node.value).split()


def shm_use_from_args(words: list[str]) -> int | None:
    """Bytes a labctl workload writes into /dev/shm, from its arguments (``posix-writer
    --size 96m``, ``devshm-fill --size 100m``); None for anything else."""
    return _size_arg(words, SHM_WRITERS)


def sysv_size_from_args(words: list[str]) -> int | None:
    """Bytes of the SysV segment a labctl workload creates (``sysv-writer --size 1m``)."""
    return _size_arg(words, ("sysv-writer",))


def _size_arg(words: list[str], programs) -> int | None:
    """The bytes of ``--size N`` when ``words`` run one of the shmlab ``programs``; None
    otherwise (another program, no --size, or a size compose would not read)."""
    ws = [w for w in words if w != "/shmlab"]
    if not ws or ws[0] not in programs:
        return None
    for i, w in enumerate(ws):
        if w == "--size" and i + 1 < len(ws):
            try:
                return compose_bytes(ws[i + 1])
            except ValueError:
                return None
    return None


def _size(node: Node, path: str) -> int:
    try:
        return compose_bytes(node.value)
    except ValueError as e:
        raise at(node, path, str(e)) from None


def _ids(user: str) -> tuple[int | None, int | None]:
    u, _, g = user.partition(":")
    return (int(u) if u.strip().isdigit() else None, int(g) if g.strip().isdigit() else None)


def _mounts(svc: Node, name: str, folder: Path | None) -> list[Mount]:
    out: list[Mount] = []
    tmpfs = svc.get("tmpfs")
    if tmpfs is not None and tmpfs.value is not None:
        for item in (tmpfs.value if tmpfs.is_seq else [tmpfs]):
            text = str(item.value)
            path, _, opts = text.partition(":")
            size = None
            for o in opts.split(","):
                if o.startswith("size="):
                    try:
                        size = compose_bytes(o[5:])
                    except ValueError:
                        pass
            out.append(Mount(V(path, loc(item)), "tmpfs", size=size, loc=loc(item)))
    vols = svc.get("volumes")
    if vols is not None and vols.is_seq:
        for item in vols.value:
            out.append(_volume(item, folder, name))
    return out


def _volume(item: Node, folder: Path | None, name: str) -> Mount:
    if item.is_map:
        t = item.get("target")
        target = str(t.value) if t is not None else ""
        kind = str(item.value["type"].value) if item.get("type") is not None else "volume"
        src = item.get("source")
        source = str(src.value) if src is not None and src.value is not None else None
        ro = bool(item.get("read_only").value) if item.get("read_only") is not None else False
        size = None
        tm = item.get("tmpfs")
        if kind == "tmpfs" and tm is not None and tm.get("size") is not None:
            try:
                size = compose_bytes(tm.value["size"].value)
            except ValueError:
                pass
        tloc = loc(t) if t is not None else loc(item)
    else:
        text = str(item.value)
        parts = text.split(":")
        if len(parts) >= 2 and len(parts[0]) == 1 and parts[0].isalpha():
            parts = [parts[0] + ":" + parts[1], *parts[2:]]
        if len(parts) == 1:
            source, target, mode = None, parts[0], ""
        else:
            source, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
        ro = "ro" in mode.split(",")
        kind = "bind" if source and source[:1] in "/.~$" else "volume"
        size = None
        tloc = loc(item)
    hint = None
    if kind == "bind" and source:
        p = Path(source).expanduser()
        if not p.is_absolute() and folder is not None:
            p = folder / p
        if p.is_file():
            hint = f"{source} is a file"
    return Mount(V(target, tloc), kind, source=source, size=size, read_only=ro, file_hint=hint, loc=loc(item))


def containers(doc: Node, project: str, profiles: Iterable[str] = ()) -> list[Container]:
    """The active services of a merged, interpolated, extended Compose document."""
    services = services_of(doc)
    folder = Path(doc.file).parent if doc.file != "-" else None
    out = []
    for name, svc in services.value.items():
        if svc.value is None:
            svc = svc.replace({})
        if not active(svc, profiles):
            continue
        c = Container(name=name, source="compose", group=project, loc=key_loc(services, name))
        path = f"services.{name}"
        ipc = svc.get("ipc")
        if ipc is not None and ipc.value is not None:
            c.ipc = V(str(ipc.value), loc(ipc))
        n = svc.get("shm_size")
        if n is not None and n.value is not None:
            c.shm_size = V(_size(n, f"{path}.shm_size"), loc(n))
        n = svc.get("mem_limit")
        if n is None:
            deploy = svc.get("deploy")
            res = deploy.get("resources") if deploy is not None else None
            lim = res.get("limits") if res is not None else None
            n = lim.get("memory") if lim is not None else None
        if n is not None and n.value is not None:
            c.memory = V(_size(n, f"{path}.mem_limit"), loc(n))
        n = svc.get("user")
        if n is not None and n.value is not None:
            c.user = V(str(n.value), loc(n))
            c.uid, c.gid = _ids(str(n.value))
        n = svc.get("group_add")
        if n is not None and n.is_seq:
            c.groups = [int(x.value) for x in n.value if str(x.value).isdigit()]
        n = svc.get("restart")
        if n is not None and n.value is not None:
            c.restart = V(str(n.value), loc(n))
        n = svc.get("runtime")
        if n is not None and n.value is not None:
            c.runtime = V(str(n.value), loc(n))
        n = svc.get("sysctls")
        if n is not None and n.value is not None:
            m = as_map(n)
            c.sysctls = [(V(k, key_loc(m, k)), "" if v.value is None else str(v.value)) for k, v in m.value.items()]
        c.mounts = _mounts(svc, name, folder)
        cmd = _words(svc.get("entrypoint")) + _words(svc.get("command"))
        env = svc.get("environment")
        envs = [str(v.value) for v in as_map(env).value.values() if v.value is not None] if env is not None and env.value is not None else []
        c.refs = cmd + envs
        c.extra["command"] = cmd
        c.extra["environment"] = ({k: (None if v.value is None else str(v.value)) for k, v in as_map(env).value.items()}
                                  if env is not None and env.value is not None else {})
        labels = svc.get("labels")
        use_node = as_map(labels).get(SHM_USE_LABEL) if labels is not None and labels.value is not None else None
        if use_node is not None and use_node.value is not None:
            c.shm_use = V(_size(use_node, f"{path}.labels.{SHM_USE_LABEL}"), loc(use_node))
        else:
            use = shm_use_from_args(_words(svc.get("command")))
            cnode = svc.get("command")
            if use is not None and cnode is not None:
                c.shm_use = V(use, loc(cnode))
        seg = sysv_size_from_args(_words(svc.get("command")))
        if seg is not None and svc.get("command") is not None:
            c.extra["sysv_segment"] = V(seg, loc(svc.value["command"]))
        cn = svc.get("container_name")
        if cn is not None and cn.value is not None:
            c.extra["container_name"] = str(cn.value)
        out.append(c)
    return out


_SHAPES = {  # what Compose accepts for the keys the model reads (it refuses anything else)
    "environment": ("map", "seq"), "labels": ("map", "seq"), "sysctls": ("map", "seq"),
    "volumes": ("seq",), "group_add": ("seq",), "profiles": ("seq",), "deploy": ("map",),
    "command": ("str", "seq"), "entrypoint": ("str", "seq"), "tmpfs": ("str", "seq"),
    "ipc": ("str",), "user": ("str", "num"), "restart": ("str",), "runtime": ("str",),
    "extends": ("str", "map"),
}
_SHAPE_WORDS = {"map": "a mapping", "seq": "a list", "str": "a string", "num": "a number"}


def _shape(node: Node) -> str:
    v = node.value
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "seq"
    if isinstance(v, bool):
        return "bool"
    return "num" if isinstance(v, (int, float)) else "str"


def check_shape(doc: Node) -> None:
    """Refuse what Compose refuses before any rule runs: ``services`` not a mapping, a
    service not a mapping, a key the model reads with the wrong type (a located error)."""
    services = services_of(doc)
    for name, svc in services.value.items():
        if not svc.is_map:
            continue
        for key, node in svc.value.items():
            want = _SHAPES.get(key)
            if want is None or node.value is None or _shape(node) in want:
                continue
            if key == "restart" and node.value is False:  # `restart: no` unquoted: YAML 1.1 false
                continue
            raise at(node, f"services.{name}.{key}", "expected " + " or ".join(_SHAPE_WORDS[w] for w in want))
        for key in ("volumes",):
            seq = svc.get(key)
            for item in (seq.value if seq is not None and seq.is_seq else []):
                if _shape(item) not in ("str", "map"):
                    raise at(item, f"services.{name}.{key}", "expected a string (SRC:DST[:MODE]) or a mapping")
        deploy = svc.get("deploy")
        for sub in ("resources", "limits"):
            deploy = deploy.get(sub) if deploy is not None and deploy.is_map else None
            if deploy is not None and deploy.value is not None and not deploy.is_map:
                raise at(deploy, f"services.{name}.deploy...{sub}", "expected a mapping")


def interpolate(doc: Node, env: dict[str, str], notes: list[str]) -> Node:
    """``doc`` with every value interpolated from ``env``; unset variables noted."""
    ip = Interpolator(env)
    out = ip.tree(doc)
    for name, node in ip.unset.items():
        notes.append(f"{node.file}:{node.line}:{node.col}: variable {name} is not set; defaulting to a blank string")
    return out

