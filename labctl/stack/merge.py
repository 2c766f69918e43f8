"""Compose's merging, as ``docker compose`` does it: a service laid over another (``extends``,
and each of several ``-f`` files over the ones before), and ``extends`` resolution.

Mappings merge key by key; ``command`` and ``entrypoint`` are replaced; ``environment``,
``labels``, ``sysctls`` (list or mapping form) merge by key; ``volumes`` merge by target;
other lists are appended without duplicates; scalars are replaced. Every value keeps the
file and position it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from labctl.stack.yamlpos import Node, at

_REPLACED = {"command", "entrypoint"}
_AS_MAP = {"environment", "labels", "sysctls", "extra_hosts", "annotations"}


def as_map(node: Node) -> Node:
    """``environment``/``labels``/``sysctls`` in list form (``K=V``) as a mapping."""
    if node.is_map or not node.is_seq:
        return node
    out: dict[str, Node] = {}
    keys: dict[str, tuple[int, int]] = {}
    for item in node.value:
        text = "" if item.value is None else str(item.value)
        k, sep, v = text.partition("=")
        if not sep and ":" in text and node is not None:
            k, _, v = text.partition(":")
        out[k.strip()] = item.replace(v if sep or ":" in text else None)
        keys[k.strip()] = (item.line, item.col)
    return Node(out, node.file, node.line, node.col, keys)


def _volume_target(item: Node) -> str:
    v = item.value
    if isinstance(v, dict):
        t = v.get("target")
        return str(t.value) if t is not None else ""
    parts = str(v).split(":")
    if len(parts) >= 2 and len(parts[0]) == 1 and parts[0].isalpha():  # C:\ (Windows paths)
        parts = [parts[0] + ":" + parts[1], *parts[2:]]
    return parts[1] if len(parts) >= 2 else parts[0]


def _seq_merge(key: str, base: Node, over: Node) -> Node:
    if key == "volumes" or key == "devices":
        by: dict[str, Node] = {}
        for item in [*base.value, *over.value]:
            by[_volume_target(item)] = item
        return over.replace(list(by.values()))
    seen: set[str] = set()
    out = []
    for item in [*base.value, *over.value]:
        sig = repr(item.plain())
        if sig not in seen:
            seen.add(sig)
            out.append(item)
    return over.replace(out)


def merge(base: Node, over: Node, top: bool = True) -> Node:
    """``over`` laid onto ``base`` as Compose merges a service (``top``: the service level)."""
    if not (base.is_map and over.is_map):
        return over
    out = dict(base.value)
    keys = dict(base.keys)
    for k, v in over.value.items():
        keys[k] = over.keys.get(k, (v.line, v.col))
        old = out.get(k)
        if old is None:
            out[k] = v
        elif top and k in _AS_MAP:
            out[k] = merge(as_map(old), as_map(v), top=False)
        elif top and k in _REPLACED:
            out[k] = v
        elif top and k == "tmpfs":
            a = old if old.is_seq else old.replace([old])
            b = v if v.is_seq else v.replace([v])
            out[k] = _seq_merge(k, a, b)
        elif old.is_map and v.is_map:
            out[k] = merge(old, v, top=False)
        elif top and old.is_seq and v.is_seq:
            out[k] = _seq_merge(k, old, v)
        else:
            out[k] = v
    return Node(out, over.file, over.line, over.col, keys)


def merge_projects(docs: list[Node]) -> Node:
    """Several Compose files as one (``docker compose -f a -f b``): services merged by name,
    other top-level sections merged by key."""
    result = docs[0]
    for nxt in docs[1:]:
        out = dict(result.value)
        keys = dict(result.keys)
        for section, node in nxt.value.items():
            keys.setdefault(section, nxt.keys.get(section, (node.line, node.col)))
            old = out.get(section)
            if section == "services" and old is not None and old.is_map and node.is_map:
                svcs = dict(old.value)
                skeys = dict(old.keys)
                for name, svc in node.value.items():
                    svcs[name] = merge(svcs[name], svc) if name in svcs else svc
                    skeys.setdefault(name, node.keys[name])
                out[section] = Node(svcs, old.file, old.line, old.col, skeys)
            elif old is not None and old.is_map and node.is_map:
                out[section] = merge(old, node, top=False)
            else:
                out[section] = node
        result = Node(out, result.file, result.line, result.col, keys)
    return result


Loader = Callable[[str], Node]  # file path -> interpolated compose document


def resolve_extends(doc: Node, load_file: Loader) -> Node:
    """Every service of ``doc`` with its ``extends`` chain applied (cycles are errors)."""
    services = services_of(doc)
    out = {}
    for name in services.value:
        out[name] = _extended(doc, name, load_file, [])
    svc_node = Node(out, services.file, services.line, services.col, services.keys)
    return doc.replace({**doc.value, "services": svc_node})


def services_of(doc: Node) -> Node:
    services = doc.value["services"]
    if services.value is None:
        return services.replace({})
    if not services.is_map:
        raise at(services, "services", "expected a mapping of service names to services")
    for name, svc in services.value.items():
        if not svc.is_map:
            if svc.value is None:
                continue
            raise at(svc, f"services.{name}", "expected a mapping (image, command, ipc, ...)")
    return services


def _extended(doc: Node, name: str, load_file: Loader, chain: list[tuple[str, str]]) -> Node:
    services = doc.value["services"]  # checked by _services before
    svc = services.value[name]
    if svc.value is None:
        svc = svc.replace({})
    ext = svc.get("extends")
    if ext is None:
        return svc
    me = (doc.file, name)
    if me in chain:
        raise at(ext, f"services.{name}.extends", "circular extends: " + " -> ".join(n for _, n in [*chain, me]))
    if isinstance(ext.value, str):
        base_name, base_file = ext.value, None
    elif ext.is_map and ext.get("service") is not None:
        base_name = str(ext.value["service"].value)
        f = ext.get("file")
        base_file = str(f.value) if f is not None else None
    else:
        raise at(ext, f"services.{name}.extends", "expected a service name or {service: NAME, file: PATH}")
    if base_file is not None:
        path = str(Path(doc.file).parent / base_file) if doc.file != "-" else base_file
        base_doc = load_file(path)
    else:
        base_doc = doc
    if base_name not in (base_doc.value["services"].value or {}):
        raise at(ext, f"services.{name}.extends", f"no service '{base_name}' in {base_doc.file}")
    base = _extended(base_doc, base_name, load_file, [*chain, me])
    rest = svc.replace({k: v for k, v in svc.value.items() if k != "extends"})
    return merge(base, rest)
