#!/usr/bin/env python3
"""Render a saved ``labctl bench --format json`` document as the terminal table.

    python benchmarks/table.py benchmarks/results/bench-pinned.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.bench.model import Config, Machine, Record, Report, render_table  # noqa: E402


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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: table.py BENCH.json")
    sys.stdout.write(render_table(load(sys.argv[1])))
