"""The ``checks:`` list: from checked values to model check specs, through the kinds table."""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any

from labctl.scenario.builder import Builder, get
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import DEFAULT_CHECK_TIMEOUT, CheckSpec, Pos
from labctl.scenario.spec import PDict, join
from labctl.scenario.yamlload import Node


def entries(b: Builder, items: Any, where: str, keys: Container[str]) -> Iterator[tuple[str, PDict, str]]:
    """``(path, entry, key)`` for each entry of the list ``items`` (``checks`` or ``steps``)
    that holds exactly one of ``keys`` with a mapping as its value; the table already
    reported the others."""
    if not isinstance(items, list):
        return
    for i, d in enumerate(items):
        if not isinstance(d, PDict):
            continue
        found = [k for k in d if k in keys]
        if len(found) == 1 and isinstance(d[found[0]], PDict):
            yield f"{where}[{i}]", d, found[0]


def build_check(b: Builder, d: PDict, path: str, kind: str, names: dict[str, int]) -> tuple[Any, str]:
    """The body of the check entry ``d`` (in ``checks:`` or ``steps:``) and its name (given, or
    the kind's default); a name already in ``names`` (name -> line, filled here) is an error."""
    body, default_name = KINDS[kind].build(b, d[kind], join(path, kind))
    name = get(d, "name") or default_name
    node: Node = d.node.value["name"] if "name" in d.node.value else d.node
    if name in names:
        b.ctx.at(node, join(path, "name") if "name" in d.node.value else path,
                 f"duplicate check name '{name}' (first at line {names[name]}); give each a distinct 'name'")
    names.setdefault(name, d.node.line)
    return body, name


def build_checks(b: Builder, checks: Any) -> list[CheckSpec]:
    """Every entry of ``checks:`` (after ``b.containers`` is set); names default from the
    kind's builder and must be unique. Entries the table already rejected are skipped."""
    out: list[CheckSpec] = []
    names: dict[str, int] = {}
    for path, d, kind in entries(b, checks, "checks", KINDS):
        body, name = build_check(b, d, path, kind, names)
        engines = tuple(get(d, "engines", []))
        outside = [e for e in engines if b.engines and e not in b.engines]
        if outside:
            b.ctx.at(d.node.value["engines"], join(path, "engines"),
                     f"the scenario runs only on {', '.join(b.engines)}; this check names {', '.join(outside)}")
        out.append(CheckSpec(name, kind, body, get(d, "timeout", DEFAULT_CHECK_TIMEOUT),
                             get(d, "consistently"), Pos(b.ctx.file, d.node.line, d.node.col), engines))
    return out
