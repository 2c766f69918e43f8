"""The ``checks:`` list: from checked values to model check specs, through the kinds table."""

from __future__ import annotations

from typing import Any

from labctl.scenario.builder import Builder, get
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import DEFAULT_CHECK_TIMEOUT, CheckSpec, Pos
from labctl.scenario.spec import PDict, join
from labctl.scenario.yamlload import Node


def build_checks(b: Builder, checks: Any) -> list[CheckSpec]:
    """Every entry of ``checks:`` (after ``b.containers`` is set); names default from the
    kind's builder and must be unique. Entries the table already rejected are skipped."""
    out: list[CheckSpec] = []
    names: dict[str, int] = {}
    if not isinstance(checks, list):
        return out
    for i, d in enumerate(checks):
        if not isinstance(d, PDict):
            continue
        path = f"checks[{i}]"
        kinds = [k for k in d if k in KINDS]
        if len(kinds) != 1 or not isinstance(d[kinds[0]], PDict):
            continue
        kind = kinds[0]
        body, default_name = KINDS[kind].build(b, d[kind], join(path, kind))
        name = get(d, "name") or default_name
        node: Node = d.node.value["name"] if "name" in d.node.value else d.node
        if name in names:
            b.ctx.at(node, join(path, "name") if "name" in d.node.value else path,
                     f"duplicate check name '{name}' (first at line {names[name]}); give each a distinct 'name'")
        names.setdefault(name, d.node.line)
        engines = tuple(get(d, "engines", []))
        outside = [e for e in engines if b.engines and e not in b.engines]
        if outside:
            b.ctx.at(d.node.value["engines"], join(path, "engines"),
                     f"the scenario runs only on {', '.join(b.engines)}; this check names {', '.join(outside)}")
        out.append(CheckSpec(name, kind, body, get(d, "timeout", DEFAULT_CHECK_TIMEOUT),
                             get(d, "consistently"), Pos(b.ctx.file, d.node.line, d.node.col), engines))
    return out
