#!/usr/bin/env python3
"""Render a saved ``labctl bench --format json`` document as the terminal table, or
with ``--markdown`` as the full Markdown table of docs/benchmarks.md (host and
container: median, p99 and messages/s per mechanism and size).

    python benchmarks/table.py benchmarks/results/bench-pinned.json
    python benchmarks/table.py --markdown benchmarks/results/bench-pinned.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.bench.conditions import Machine  # noqa: E402
from labctl.bench.records import (Config, Record, Report, human_ns, human_size,  # noqa: E402
                                render_table)


def load(path: str) -> Report:
    """A Report from the JSON document (fields unknown to this version are ignored)."""
    doc = json.loads(Path(path).read_text())
    fields = set(Record.__dataclass_fields__)
    records = tuple(Record(**{k: v for k, v in r.items() if k in fields}) for r in doc["results"])
    cfg = doc.get("config", {})
    config = Config(tuple(cfg.get("mechanisms", ())) or Config().mechanisms, tuple(cfg.get("sizes", ())) or Config().sizes,
                    tuple(cfg.get("placements", ())) or Config().placements, int(cfg.get("iterations", 0)) or 1,
                    bool(doc.get("pinned")))
    pins = doc.get("pinned_cpus") or {}
    return Report(Machine(**doc["machine"]), config, records,
                  (pins["server"], pins["client"]) if pins else (), tuple(doc.get("errors", ())))


def markdown(report: Report) -> str:
    """One Markdown row per mechanism and size: host and container median, p99, msgs/s."""
    out = ["| mechanism | size | host median | host p99 | host msgs/s | container median | container p99 "
           "| container msgs/s | ctr/host |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mech in report.config.mechanisms:
        for size in report.config.sizes:
            h, c = report.find(mech, "host", size), report.find(mech, "container", size)
            if h is None and c is None:
                continue
            cells = [mech, human_size(size)]
            for r in (h, c):
                cells += ([human_ns(r.rtt_ns_median), human_ns(r.rtt_ns_p99), f"{r.msgs_per_s:,}"] if r
                          else ["-", "-", "-"])
            cells.append(f"{c.rtt_ns_median / h.rtt_ns_median:.2f}" if h and c and h.rtt_ns_median else "-")
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    args = sys.argv[1:]
    md = "--markdown" in args
    args = [a for a in args if a != "--markdown"]
    if len(args) != 1:
        raise SystemExit("usage: table.py [--markdown] BENCH.json")
    try:
        report = load(args[0])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"table.py: cannot read {args[0]} as a labctl bench JSON document: {e}") from None
    sys.stdout.write(markdown(report) if md else render_table(report))
