"""From a loaded Node tree to a validated :class:`~labctl.scenario.model.Scenario`.

Key and type checks come from the declarative table (``format_table.SCENARIO``); this module
adds the rules that look across the file: references between containers, start-order
cycles, volumes, the opt-ins a file requires. All errors are collected and raised
together, sorted by position.
"""

from __future__ import annotations

import os
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.scenario.builder import Builder, get as _get, node_of as _node, pos_of
from labctl.scenario.check_specs import build_checks
from labctl.scenario.format_table import SCENARIO
from labctl.scenario.security import ENGINE_ONLY, security_opts
from labctl.scenario.steps import build_steps
from labctl.scenario.model import (
    After, ContainerSpec, MountSpec, Pos, Scenario, VolumeSpec, linked_container,
)
from labctl.scenario.spec import INVALID, Ctx, PDict, PList, did_you_mean, join
from labctl.scenario.yamlload import Node


# --------------------------------------------------------------------------- volumes


def build_volume(b: Builder, name: str, d: Any, node: Node) -> VolumeSpec:
    """One entry of ``volumes:``; hostdir paths outside the file's folder need an opt-in."""
    path = f"volumes.{name}"
    vtype = _get(d, "type", "volume")
    if not isinstance(d, PDict):
        return VolumeSpec(name, pos=pos_of(b.ctx, node))
    if "size" in d and vtype != "tmpfs-volume":
        b.ctx.at(_node(d, "size"), join(path, "size"), "'size' applies only to type tmpfs-volume")
    if "path" in d and vtype != "hostdir":
        b.ctx.at(_node(d, "path"), join(path, "path"), "'path' applies only to type hostdir")
    hostpath = _get(d, "path")
    if vtype == "hostdir":
        if "path" not in d:
            b.ctx.at(node, path, "a hostdir volume needs 'path'")
        elif isinstance(hostpath, str):
            base = os.path.realpath(b.base_dir)
            resolved = os.path.realpath(os.path.join(base, hostpath))
            # `..` traversal and absolute paths are the same case: outside the file's folder.
            if os.path.commonpath([base, resolved]) != base:
                b.require("allow-host-paths", join(path, "path"), _node(d, "path"))
    return VolumeSpec(name, vtype, hostpath if vtype == "hostdir" else None,
                      _get(d, "size") if vtype == "tmpfs-volume" else None, pos_of(b.ctx, node))


# --------------------------------------------------------------------------- containers


def _mounts(b: Builder, d: PDict, path: str) -> list[MountSpec]:
    out = []
    vols = _get(d, "volumes", [])
    for i, spec in enumerate(vols):
        if spec is INVALID:
            continue
        node = vols.node.value[i]
        ipath = f"{join(path, 'volumes')}[{i}]"
        parts = spec.split(":")
        source, target = parts[0], parts[1]
        ro = len(parts) > 2 and parts[2] == "ro"
        if source not in b.volume_names:
            choices = b.volume_names
            hint = did_you_mean(source, choices) if choices else " (declare it under the top-level volumes:)"
            b.ctx.at(node, ipath, f"unknown volume '{source}'{hint}")
        if ".." in target.split("/"):
            b.ctx.at(node, ipath, f"mount target {target!r} may not contain '..'")
        out.append(MountSpec(source, target, ro, False, pos_of(b.ctx, node)))
    tmpfs = _get(d, "tmpfs", [])
    for i, target in enumerate(tmpfs):
        if target is INVALID:
            continue
        node = tmpfs.node.value[i]
        target, _, opts = target.partition(":")
        if ".." in target.split("/"):
            b.ctx.at(node, f"{join(path, 'tmpfs')}[{i}]", f"tmpfs path {target!r} may not contain '..'")
        out.append(MountSpec(None, target, False, True, pos_of(b.ctx, node),
                             tuple(o for o in opts.split(",") if o)))
    seen: dict[str, int] = {}
    for m in out:
        if m.target in seen:
            b.ctx.err(m.pos.line, m.pos.col, join(path, "tmpfs" if m.tmpfs else "volumes"),
                      f"two mounts at {m.target!r} (first at line {seen[m.target]})")
        seen.setdefault(m.target, m.pos.line)
    return out


def _after(b: Builder, name: str, d: PDict, path: str) -> list[After]:
    raw = _get(d, "after")
    if raw is None:
        return []
    apath = join(path, "after")
    items: list[tuple[Any, Node, str]]
    if isinstance(raw, PList):
        items = [(v, raw.node.value[i], f"{apath}[{i}]") for i, v in enumerate(raw)]
    else:
        items = [(raw, _node(d, "after"), apath)]
    out = []
    for value, node, ipath in items:
        if value is INVALID:
            continue
        pairs = [(value, "started", node, ipath)] if isinstance(value, str) else [
            (k, v, value.node.value[k], join(ipath, k)) for k, v in value.items()]
        for target, cond, cnode, cpath in pairs:
            # The key's own position for {NAME: COND}: that is what a bad NAME points at.
            tnode = cnode if isinstance(value, str) else Node(target, *value.node.keys[target])
            if not b.ref(target, tnode, cpath):
                continue
            if target == name:
                b.ctx.at(tnode, cpath, f"container '{name}' cannot start after itself")
                continue
            if cond is INVALID:
                continue
            if cond == "started":
                out.append(After(target, "started", None, pos_of(b.ctx, tnode)))
            elif cond == "exited":
                out.append(After(target, "exited", None, pos_of(b.ctx, tnode)))
            elif cond.startswith("/"):
                out.append(After(target, "output", cond[1:-1], pos_of(b.ctx, tnode)))
            else:
                out.append(After(target, "event", cond, pos_of(b.ctx, tnode)))
    return out


def _link(b: Builder, name: str, d: PDict, key: str, path: str) -> None:
    """``ipc``/``network``/``pid``: ``container:X`` must name another container here."""
    target = linked_container(_get(d, key))
    if target is None:
        return
    node = _node(d, key)
    if b.ref(target, node, join(path, key)) and target == name:
        b.ctx.at(node, join(path, key), f"container '{name}' cannot join its own {key} namespace")


def build_container(b: Builder, name: str, d: Any, node: Node) -> ContainerSpec:
    """One entry of ``containers:``."""
    path = f"containers.{name}"
    if not isinstance(d, PDict):
        return ContainerSpec(name, pos=pos_of(b.ctx, node))
    for key in ("ipc", "network", "pid"):
        _link(b, name, d, key, path)
    ipc = _get(d, "ipc", "private")
    if ipc == "host":
        b.require("allow-host-ipc", join(path, "ipc"), _node(d, "ipc"))
        for key, knode in ((k, Node(k, *d.node.value["sysctls"].keys[k])) for k in _get(d, "sysctls", {})):
            if key.startswith(("kernel.", "fs.mqueue.")):
                b.ctx.at(knode, join(join(path, "sysctls"), key), "IPC sysctls cannot be set with ipc: host")
    privileged = [
        ("privileged", _get(d, "privileged") is True),
        ("cap_add", bool(_get(d, "cap_add"))),
        ("pid", _get(d, "pid") == "host"),
        ("network", _get(d, "network") == "bridge"),
        ("devices", bool(_get(d, "devices"))),
        # read_only: false is no opt-in: a writable root inside a container with no
        # capabilities, no network and a non-root uid reaches nothing of the host's.
    ]
    for key, needed in privileged:
        if needed:
            b.require("allow-privileged", join(path, key), _node(d, key))
    for key in ENGINE_ONLY:
        if key in d and _get(d, key) is not None:
            b.engine_only(key, join(path, key), _node(d, key))

    def strings(key: str) -> tuple[str, ...] | None:
        v = _get(d, key)
        return None if v is None else tuple(x for x in v if x is not INVALID)

    return ContainerSpec(
        name=name,
        workload=_get(d, "workload"),
        args=strings("args") or (),
        image=_get(d, "image"),
        command=strings("command"),
        entrypoint=strings("entrypoint"),
        ipc=ipc,
        ipc_set="ipc" in d,
        mounts=tuple(_mounts(b, d, path)),
        user=_get(d, "user"),
        shm_size=_get(d, "shm_size"),
        sysctls=tuple((k, v) for k, v in _get(d, "sysctls", {}).items() if v is not INVALID),
        env=tuple((k, v) for k, v in _get(d, "env", {}).items() if v is not INVALID),
        labels=tuple((k, v) for k, v in _get(d, "labels", {}).items() if v is not INVALID),
        after=tuple(_after(b, name, d, path)),
        timeout=_get(d, "timeout", 30.0),
        read_only=_get(d, "read_only", True),
        network=_get(d, "network", "none"),
        cap_add=strings("cap_add") or (),
        privileged=_get(d, "privileged", False),
        pid=_get(d, "pid"),
        devices=strings("devices") or (),
        platform=_get(d, "platform"),
        runtime=_get(d, "runtime"),
        security_opt=security_opts(b, _get(d, "security_opt"), join(path, "security_opt")),
        shm_options=_shm_options(b, d, path, ipc),
        userns=_get(d, "userns"),
        umask=_get(d, "umask"),
        memory=_get(d, "memory"),
        memory_swap=_memory_swap(b, d, path),
        restart=_get(d, "restart", "no"),
        start=_get(d, "start", True),
        pos=pos_of(b.ctx, node),
    )


def _shm_options(b: Builder, d: PDict, path: str, ipc: str) -> tuple[str, ...]:
    """``shm_options`` give the container a /dev/shm of its own: refused where /dev/shm is
    another's (ipc: container:NAME, host) or absent (none)."""
    opts = tuple(x for x in (_get(d, "shm_options") or ()) if isinstance(x, str))
    if opts and (ipc.startswith("container:") or ipc in ("host", "none")):
        b.ctx.at(_node(d, "shm_options"), join(path, "shm_options"),
                 f"shm_options mount a /dev/shm of this container's own, which ipc: {ipc} does not have")
    return opts


MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses less


def _memory_swap(b: Builder, d: PDict, path: str) -> int | None:
    """``memory`` at least 6m; ``memory_swap`` needs ``memory`` and is at least it."""
    mem, swap = _get(d, "memory"), _get(d, "memory_swap")
    if mem is not None and mem < MIN_MEMORY:
        b.ctx.at(_node(d, "memory"), join(path, "memory"), "memory must be at least 6m (the engine refuses less)")
    if swap is not None:
        if "memory" not in d:
            b.ctx.at(_node(d, "memory_swap"), join(path, "memory_swap"), "memory_swap needs memory")
        elif mem is not None and swap < mem:
            b.ctx.at(_node(d, "memory_swap"), join(path, "memory_swap"),
                     f"memory_swap ({swap} bytes) is below memory ({mem} bytes); equal to it means no swap")
    return swap  # type: ignore[no-any-return]


def check_engine_only(b: Builder) -> None:
    """A key only some engines carry out, in a scenario whose ``engines:`` names none of
    them, could never run: an error at the key."""
    for key, path, pos in b.engine_keys:
        engines, why = ENGINE_ONLY[key]
        if b.engines and not set(b.engines) & set(engines):
            b.ctx.err(pos.line, pos.col, path, f"{key} is carried out only by {' or '.join(engines)}, and this "
                                               f"scenario runs only on {', '.join(b.engines)} (engines:): {why}")


def check_cycles(b: Builder, containers: list[ContainerSpec]) -> None:
    """Start order must be a DAG: ``after`` and ``container:`` links (a joiner starts after its donor)."""
    deps: dict[str, list[tuple[str, Pos, str]]] = {c.name: [] for c in containers}
    for c in containers:
        for a in c.after:
            deps[c.name].append((a.container, a.pos, f"containers.{c.name}.after"))
        for key, donor in c.links.items():
            if donor in deps and donor != c.name:
                deps[c.name].append((donor, c.pos, f"containers.{c.name}.{key}"))
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for dep, pos, where in deps.get(name, []):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    b.ctx.err(pos.line, pos.col, where,
                              "start-order cycle: " + " -> ".join(cycle))
            elif state.get(dep) is None and dep in deps:
                visit(dep, stack)
        stack.pop()
        state[name] = 2

    for c in containers:
        if c.name not in state:
            visit(c.name, [])


# --------------------------------------------------------------------------- scenario


def validate_tree(tree: Node, file: str, base_dir: str | None = None) -> Scenario:
    """Validate a loaded tree; return the Scenario or raise ScenarioErrors (all of them)."""
    ctx = Ctx(file)
    top = SCENARIO.check(tree, "", ctx)
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else os.getcwd()
    b = Builder(ctx, tree, base_dir)
    vols = _get(top, "volumes", {})
    volumes = [build_volume(b, n, v, vols.node.value[n]) for n, v in vols.items()]
    conts = _get(top, "containers", {})
    containers = [build_container(b, n, v, conts.node.value[n]) for n, v in conts.items()]
    check_cycles(b, containers)
    b.containers = containers
    b.engines = tuple(_get(top, "engines", []))
    check_engine_only(b)
    checks = build_checks(b, _get(top, "checks", []))
    steps = build_steps(b, _get(top, "steps", []), {c.name: c.pos.line for c in checks})
    if ctx.errors:
        raise ScenarioErrors(sort_errors(ctx.errors))
    return Scenario(
        version=top["version"], name=top["name"], description=top["description"],
        tags=tuple(_get(top, "tags", [])), containers=tuple(containers), checks=tuple(checks),
        volumes=tuple(volumes), timeout=_get(top, "timeout", 120.0), file=file,
        pos=pos_of(ctx, tree), requires=tuple(sorted(b.requires, key=lambda r: (r[2].line, r[2].col))),
        steps=tuple(steps),
        engines=tuple(_get(top, "engines", [])),
        engine_only=tuple(b.engine_keys),
    )


def sort_errors(errors: list[ScenarioError]) -> list[ScenarioError]:
    """By position (file, line, column); exact duplicates dropped."""
    seen: set[str] = set()
    out = []
    for e in sorted(errors, key=lambda e: (e.file, e.line or 0, e.col or 0)):
        if e.message not in seen:
            seen.add(e.message)
            out.append(e)
    return out
