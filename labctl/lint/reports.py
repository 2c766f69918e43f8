"""``labctl check`` reports: text (``FILE:LINE:COL RULE message``), JSON, SARIF 2.1.0.

SARIF is what GitHub code scanning and GitLab read: one run whose tool driver lists every
rule (id, title, cause, fix, severity as ``defaultConfiguration.level``, the library scenario
under ``properties``) and one result per finding with its physical location. Standard
input is reported as the artifact ``stdin``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from labctl import __version__
from labctl.lint import Finding, Rule, table
from labctl.stack import STDIN
from labctl.stack.topology import Topology

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/labctl/labctl/blob/main/docs/check.md"


def text(findings: Sequence[Finding]) -> str:
    return "".join(f.text() + "\n" for f in findings)


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    out = {"errors": 0, "warnings": 0, "notes": 0}
    for f in findings:
        out[f.severity + "s"] += 1
    return out


def _topology_json(topo: Topology) -> list[dict[str, Any]]:
    out = []
    for ns in topo.namespaces:
        out.append({
            "id": ns.id, "kind": ns.kind, "group": ns.group, "holder": ns.holder,
            "devshm_bytes": ns.devshm, "devshm_default": ns.devshm_loc is None,
            "runtime_class": ns.runtime_class.value if ns.runtime_class else None,
            "sysctls": {k.value: v for k, v in ns.sysctls},
            "containers": [{
                "name": c.name, "file": c.loc.file, "line": c.loc.line, "col": c.loc.col,
                "ipc": c.ipc.value if c.ipc else None,
                "shm_size": c.shm_size.value if c.shm_size else None,
                "memory": c.memory.value if c.memory else None,
                "user": c.user.value if c.user else None, "uid": c.uid, "gid": c.gid,
                "restart": c.restart.value if c.restart else None,
                "runtime": c.runtime.value if c.runtime else None,
                "shm_use": c.shm_use.value if c.shm_use else None,
                "mounts": [{"target": m.target.value, "kind": m.kind, "source": m.source, "size": m.size,
                            "read_only": m.read_only} for m in c.mounts],
            } for c in ns.members],
        })
    return out


def to_json(topo: Topology, findings: Sequence[Finding]) -> str:
    rules = table()
    doc = {
        "inputs": topo.inputs,
        "summary": summary(findings),
        "findings": [{"file": f.file, "line": f.line, "col": f.col, "rule": f.rule, "severity": f.severity,
                      "message": f.message, "scenario": rules[f.rule].scenario} for f in findings],
        "topology": _topology_json(topo),
    }
    return json.dumps(doc, indent=2) + "\n"


def _sarif_rule(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": "".join(w.capitalize() for w in r.id.split("-")),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.cause},
        "help": {"text": f"{r.fix} Library scenario: scenarios/{r.scenario}.yaml (`labctl run "
                         f"scenarios/{r.scenario}.yaml` shows it on an engine)."},
        "defaultConfiguration": {"level": r.severity},
        "helpUri": INFO_URI + "#" + r.id,
        "properties": {"scenario": r.scenario, "twin": r.twin, "tags": ["shared-memory", "ipc"]},
    }


def to_sarif(topo: Topology, findings: Sequence[Finding]) -> str:
    rules = list(table().values())
    index = {r.id: i for i, r in enumerate(rules)}
    uris = []
    for name in topo.inputs:
        uri = "stdin" if name == STDIN else name
        if uri not in uris:
            uris.append(uri)
    results = []
    for f in findings:
        uri = "stdin" if f.file == STDIN else f.file
        results.append({
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": f.severity,
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": uri, "index": uris.index(uri) if uri in uris else 0},
                "region": {"startLine": f.line, "startColumn": f.col},
            }}],
        })
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": "labctl", "semanticVersion": __version__, "version": __version__,
                                "informationUri": INFO_URI, "rules": [_sarif_rule(r) for r in rules]}},
            "columnKind": "unicodeCodePoints",
            "artifacts": [{"location": {"uri": u}} for u in uris],
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def list_rules(fmt: str = "text") -> str:
    rules = list(table().values())
    if fmt == "json":
        return json.dumps([{"id": r.id, "severity": r.severity, "title": r.title, "cause": r.cause, "fix": r.fix,
                            "scenario": r.scenario, "twin": r.twin, "applies_to": list(r.applies_to)}
                           for r in rules], indent=2) + "\n"
    out = []
    for r in rules:
        out.append(f"{r.id} ({r.severity}): {r.title}")
        out.append(f"    scenario: scenarios/{r.scenario}.yaml" + (f" (fixed twin: {r.twin})" if r.twin else ""))
        out.append(f"    fix: {r.fix}")
    return "\n".join(out) + "\n"


def _scenario_link(name: str) -> str:
    from labctl.images.library import library_files

    if name in library_files():
        return f"[`{name}`](../scenarios/{name}.yaml)"
    return f"`{name}` (to come)"


def markdown_table() -> str:
    """The rules table of docs/check.md (a unit test compares it with the committed file)."""
    lines = ["| rule | severity | reads | what it finds | library scenario (fixed twin) |", "|---|---|---|---|---|"]
    for r in table().values():
        twin = f" ({_scenario_link(r.twin)})" if r.twin else ""
        lines.append(f"| `{r.id}` | {r.severity} | {', '.join(r.applies_to)} | {r.title} | "
                     f"{_scenario_link(r.scenario)}{twin} |")
    return "\n".join(lines) + "\n"


def markdown_causes() -> str:
    """One section per rule: cause and fix (docs/check.md, generated like the table)."""
    out = []
    for r in table().values():
        out += [f"### {r.id}", "", f"**{r.severity}**: {r.title}.", "", f"*Cause:* {r.cause}", "",
                f"*Fix:* {r.fix}", "", f"*Shown by:* {_scenario_link(r.scenario)}"
                + (f"; fixed twin {_scenario_link(r.twin)}" if r.twin else "") + ".", ""]
    return "\n".join(out)


DOC_BEGIN = "<!-- rules: generated by labctl.lint.reports.markdown_rules(); tests/unit/test_check_cli.py checks it -->"
DOC_END = "<!-- end of generated rules -->"


def markdown_rules() -> str:
    """The generated part of docs/check.md: the rules table, then each rule's cause and fix."""
    return f"{DOC_BEGIN}\n\n{markdown_table()}\n{markdown_causes()}{DOC_END}\n"
