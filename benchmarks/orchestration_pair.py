#!/usr/bin/env python3
"""Orchestration at the floor: ``labctl run`` of one scenario against what a user would
run instead, ``docker compose`` over the compose file ``labctl compose`` renders for it.

One command (``python benchmarks/orchestration_pair.py``) runs ``--pairs`` PAIRED
measurements (default 7) of scenario ``--scenario`` (default scenarios/sysv-shareable.yaml):

* ``labctl``: ``labctl run SCENARIO`` as a child process: containers, event-gated starts,
  probes, every check, teardown and the cleanup verification. Wall from spawn to exit.
* ``compose``: ``docker compose -p NAME -f FILE up --exit-code-from reader`` and then
  ``docker compose -p NAME -f FILE down`` (the file rendered once by ``labctl compose``
  beforehand, outside the timing): the same containers and start gates, no checks. Wall
  from the first spawn to the end of ``down``.

Before the pairs, ``--warmup`` runs of each (default 1, not counted) bring both
into the page cache and the engine's state the pairs will see. The two then alternate
(compose first in even pairs, labctl first in odd ones); each pair gives
ratio = labctl / compose. Prints every pair with the 1-minute load average at its start,
the median and the worst ratio, and NOISY when the compose times themselves vary by more
than 25 % ((max - min) / median). Target: median ratio <= 1.1. JSON on stdout (``--out``
also writes it); exit 1 when a run failed or the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABCTL = [sys.executable, "-m", "labctl"]
TARGET = 1.1
NOISY = 0.25


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(argvs: list[list[str]]) -> tuple[float, list[int], str]:
    """Run the commands one after another; (wall s, exit codes, stderr tail of a failure)."""
    codes, tail = [], ""
    t0 = time.monotonic()
    for argv in argvs:
        proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        codes.append(proc.returncode)
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-1500:]
    return time.monotonic() - t0, codes, tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="scenarios/sysv-shareable.yaml")
    ap.add_argument("--exit-from", default="reader", help="the service compose takes the exit code from")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted runs of each before the pairs (default 1)")
    ap.add_argument("--out", help="also write the JSON document here")
    args = ap.parse_args()

    subprocess.run([*LABCTL, "build"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="labctl-compose-pair-") as tmp:
        compose_file = Path(tmp) / "compose.yml"
        compose_file.write_text(subprocess.run([*LABCTL, "compose", args.scenario], cwd=ROOT, check=True,
                                               stdout=subprocess.PIPE, text=True).stdout)
        rows = []
        for i in range(-args.warmup, args.pairs):
            project = f"labctl-bench-{uuid.uuid4().hex[:8]}"
            dc = ["docker", "compose", "-p", project, "-f", str(compose_file)]
            runs = {
                "labctl": [[*LABCTL, "run", args.scenario, "--format", "json"]],
                "compose": [[*dc, "up", "--exit-code-from", args.exit_from, "--quiet-pull"],
                            [*dc, "down", "--volumes", "--timeout", "10"]],
            }
            order = ("compose", "labctl") if i % 2 == 0 else ("labctl", "compose")
            got = {}
            for mode in order:
                load = round(os.getloadavg()[0], 2)
                wall, codes, tail = _timed(runs[mode])
                ok = all(c == 0 for c in codes)
                if not ok:
                    _say(f"{mode} failed (exit codes {codes}): {tail}")
                    if mode == "compose":  # never leave the project behind
                        subprocess.run([*dc, "down", "--volumes", "--timeout", "10"], cwd=ROOT,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                got[mode] = {"wall_s": round(wall, 3), "exit_codes": codes, "ok": ok, "load_1m": load}
            ratio = got["labctl"]["wall_s"] / got["compose"]["wall_s"]
            if i < 0:
                _say(f"  warm-up: compose {got['compose']['wall_s']:.2f} s, labctl {got['labctl']['wall_s']:.2f} s "
                     "(not counted)")
                continue
            rows.append({"pair": i + 1, "order": "/".join(order), **got, "ratio": round(ratio, 3)})
            _say(f"  pair {i + 1} ({'/'.join(order)}): compose {got['compose']['wall_s']:.2f} s "
                 f"(load {got['compose']['load_1m']}), labctl {got['labctl']['wall_s']:.2f} s "
                 f"(load {got['labctl']['load_1m']}): ratio {ratio:.3f}")
    ratios = sorted(r["ratio"] for r in rows)
    composes = [r["compose"]["wall_s"] for r in rows]
    spread = (max(composes) - min(composes)) / statistics.median(composes)
    summary = {"scenario": args.scenario, "pairs": rows,
               "labctl_median_s": round(statistics.median(r["labctl"]["wall_s"] for r in rows), 3),
               "compose_median_s": round(statistics.median(composes), 3),
               "ratio_median": round(statistics.median(ratios), 3), "ratio_worst": ratios[-1],
               "ratio_min": ratios[0], "compose_spread": round(spread, 3), "noisy": spread > NOISY,
               "all_ok": all(r["labctl"]["ok"] and r["compose"]["ok"] for r in rows), "target_median_ratio": TARGET}
    summary["meets_target"] = summary["all_ok"] and summary["ratio_median"] <= TARGET
    doc = {"command": "python benchmarks/orchestration_pair.py " + " ".join(sys.argv[1:]),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(), **summary}
    _say(f"median labctl {summary['labctl_median_s']} s vs compose {summary['compose_median_s']} s: "
         f"ratio median {summary['ratio_median']}, worst {summary['ratio_worst']}, compose spread "
         f"{100 * spread:.0f} %" + (" NOISY" if summary["noisy"] else "") +
         ("; target met" if summary["meets_target"] else "; TARGET MISSED"))
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if summary["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
