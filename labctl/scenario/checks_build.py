"""The ``checks:`` list: from checked values to model check specs, with cross-references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labctl.scenario.model import (
    BUILTIN_LAYOUTS, CHECK_KINDS, DEFAULT_CHECK_TIMEOUT, CheckBody, CheckSpec, CleanupCheck, ContainerSpec,
    EventsCheck, ExitCheck, Expect, Field, FileCheck, NamespaceCheck, OutputCheck, Pos, RefusedCheck,
    SegmentCheck,
)
from labctl.scenario.spec import INVALID, PDict, PList, did_you_mean, join
from labctl.scenario.yamlload import Node

if TYPE_CHECKING:
    from labctl.scenario.validate import Builder


def _get(d: Any, key: str, default: Any = None) -> Any:
    if not isinstance(d, dict):
        return default
    v = d.get(key, default)
    return default if v is INVALID else v


def _ref(b: Builder, d: PDict, key: str, path: str, **kw: Any) -> str:
    value = _get(d, key, "")
    if key in d.node.value:
        b.ref(value, d.node.value[key], join(path, key), **kw)
    return value


def _layout(b: Builder, d: PDict, path: str) -> tuple[Field, ...]:
    raw = _get(d, "layout")
    if raw is None:
        return ()
    if isinstance(raw, str):
        return BUILTIN_LAYOUTS[raw]
    out = []
    seen: set[str] = set()
    for i, f in enumerate(raw):
        if not isinstance(f, PDict) or any(_get(f, k) is None for k in ("name", "offset", "type")):
            continue
        if f["name"] in seen:
            b.ctx.at(f.node, f"{join(path, 'layout')}[{i}].name", f"duplicate field name '{f['name']}'")
        seen.add(f["name"])
        out.append(Field(f["name"], f["offset"], f["type"]))
    return tuple(out)


def _fields(b: Builder, d: PDict, path: str, layout: tuple[Field, ...]) -> tuple[tuple[str, Expect], ...]:
    raw = _get(d, "fields", {})
    names = [f.name for f in layout]
    out = []
    for k, v in raw.items():
        if layout and k not in names:
            line, col = raw.node.keys[k]
            b.ctx.err(line, col, join(join(path, "fields"), k), f"no field '{k}' in the layout" + did_you_mean(k, names))
        if v is not INVALID:
            out.append((k, v))
    return tuple(out)


def _body(b: Builder, kind: str, d: PDict, path: str, ipc_of: dict[str, tuple[str, str]]) -> tuple[CheckBody, str]:
    """The check body and its default name."""
    if kind == "exit":
        c = _ref(b, d, "container", path)
        code = _get(d, "code")
        codes = () if "signal" in d else tuple(code) if isinstance(code, list) else (code if code is not None else 0,)
        return ExitCheck(c, tuple(x for x in codes if x is not INVALID), _get(d, "signal")), f"exit {c}"
    if kind == "events":
        c = _ref(b, d, "container", path)
        mn, mx = _get(d, "min", 1), _get(d, "max")
        if mx is not None and mx < mn:
            b.ctx.at(d.node.value["max"], join(path, "max"), f"max ({mx}) is below min ({mn})")
        conds = [(k, v) for k, v in _get(d, "where", {}).items() if v is not INVALID]
        if "errno" in d and _get(d, "errno"):
            conds.append(("errno", Expect("eq", d["errno"])))
        event = _get(d, "event", "")
        return EventsCheck(c, event, tuple(conds), mn, mx, _get(d, "rising")), f"events {c} {event}"
    if kind == "namespace":
        pair = _get(d, "containers")
        if not isinstance(pair, PList) or len(pair) != 2:
            pair = ["", ""]  # absent or invalid: the error is already recorded
        else:
            for i, name in enumerate(pair):
                if name is not INVALID:
                    b.ref(name, pair.node.value[i], f"{join(path, 'containers')}[{i}]", allow_host=True)
        a, c = (x if isinstance(x, str) else "" for x in pair)
        same = _get(d, "same", True)
        return NamespaceCheck(a, c, same), f"namespace {a} {'same as' if same else 'differs from'} {c}"
    if kind == "segment":
        where = _ref(b, d, "in", path)
        owner = ipc_of.get(where)
        if owner is not None and where in b.container_names:
            mode = owner[1]
            if mode not in ("shareable", "host"):
                via = f"lives in the IPC namespace of '{owner[0]}', whose" if owner[0] != where else "has"
                b.ctx.at(d.node.value["in"], join(path, "in"),
                         f"container '{where}' {via} ipc is '{mode}': a probe can only join a "
                         "shareable or host namespace")
        sf = _ref(b, d, "shmid_from", path) if "shmid_from" in d else None
        layout = _layout(b, d, path)
        key = _get(d, "key")
        body = SegmentCheck(where, key, sf, _get(d, "present", True), _get(d, "size"), _get(d, "nattch"),
                            _get(d, "perms"), _get(d, "dest"), layout, _fields(b, d, path, layout))
        sel = f"key 0x{key:x}" if isinstance(key, int) and key >= 0 else f"key {key}" if key is not None \
            else f"shmid of {sf}"
        return body, f"segment in {where} {sel}"
    if kind == "file":
        c = _ref(b, d, "container", path)
        same_as = _ref(b, d, "same_as", path) if "same_as" in d else None
        layout = _layout(b, d, path)
        p = _get(d, "path", "")
        return FileCheck(c, p, _get(d, "exists", True), _get(d, "size"), same_as, layout,
                         _fields(b, d, path, layout)), f"file {c} {p}"
    if kind == "output":
        c = _ref(b, d, "container", path)
        return OutputCheck(c, _get(d, "matches"), _get(d, "not_matches"), _get(d, "stream", "both")), \
            f"output {c} {'matches' if 'matches' in d else 'not matches'}"
    if kind == "refused":
        c = _ref(b, d, "container", path)
        return RefusedCheck(c, _get(d, "matches", "")), f"refused {c}"
    return CleanupCheck(), "cleanup"


def build_checks(b: Builder, checks: Any, containers: list[ContainerSpec]) -> list[CheckSpec]:
    """Every entry of ``checks:``; names default from the kind and must be unique."""
    ipc_of = _ipc_owners(containers)
    uses_host_ipc = any(c.ipc == "host" for c in containers)
    out: list[CheckSpec] = []
    names: dict[str, int] = {}
    if not isinstance(checks, list):
        return out
    for i, d in enumerate(checks):
        if not isinstance(d, PDict):
            continue
        path = f"checks[{i}]"
        kinds = [k for k in d if k in CHECK_KINDS]
        if len(kinds) != 1 or not isinstance(d[kinds[0]], PDict):
            continue
        kind = kinds[0]
        body, default_name = _body(b, kind, d[kind], join(path, kind), ipc_of)
        if isinstance(body, CleanupCheck):
            body = CleanupCheck(host_ipc=uses_host_ipc)
        name = _get(d, "name") or default_name
        node: Node = d.node.value["name"] if "name" in d.node.value else d.node
        if name in names:
            b.ctx.at(node, join(path, "name") if "name" in d.node.value else path,
                     f"duplicate check name '{name}' (first at line {names[name]}); give each a distinct 'name'")
        names.setdefault(name, d.node.line)
        out.append(CheckSpec(name, kind, body, _get(d, "timeout", DEFAULT_CHECK_TIMEOUT),
                             _get(d, "consistently"), Pos(b.ctx.file, d.node.line, d.node.col)))
    return out





def _ipc_owners(containers: list[ContainerSpec]) -> dict[str, tuple[str, str]]:
    """container -> (owner of its IPC namespace, the owner's ipc mode), following container: links."""
    by_name = {c.name: c for c in containers}
    out = {}
    for c in containers:
        cur, seen = c, {c.name}
        while cur.ipc_donor is not None and cur.ipc_donor in by_name and cur.ipc_donor not in seen:
            seen.add(cur.ipc_donor)
            cur = by_name[cur.ipc_donor]
        mode = cur.ipc if not cur.ipc.startswith("container:") else "private"
        out[c.name] = (cur.name, mode)
    return out
