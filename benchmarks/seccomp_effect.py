#!/usr/bin/env python3
"""Evidence for docs/benchmarks.md: what Docker's default seccomp filter costs each
mechanism. Runs container pairs (64 B by default) with the default profile and with
``seccomp=unconfined`` (everything else hardened as usual), plus host pairs as the
baseline, interleaved (the order alternates every repetition), ``--repeat`` times, and
prints the median of the per-pair medians as JSON.

    python benchmarks/seccomp_effect.py --repeat 3 > benchmarks/results/seccomp.json

The unconfined containers exist only for this measurement: they carry labctl's labels
(plus ``seccomp=unconfined``) and are removed with the rest of the run in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.images import build  # noqa: E402
from labctl.bench import host_binary  # noqa: E402
from labctl.bench.conditions import this_machine  # noqa: E402
from labctl.bench.records import MECHANISMS  # noqa: E402
from labctl.bench.launch import SCENARIO, ContainerPairs, HostPairs, PairError, PairSpec  # noqa: E402
from labctl.runtime.labels import labels_for  # noqa: E402
from labctl.runtime import Engine, RunSpec  # noqa: E402

PLACEMENTS = ("host", "container", "container-unconfined")


class UnconfinedPairs(ContainerPairs):
    """Container pairs without the seccomp filter (only for this measurement). They share
    the confined pairs' volumes and bridge network (one set of objects per run)."""

    def __init__(self, confined: ContainerPairs) -> None:
        super().__init__(confined.engine, confined.image, confined.run_id)
        self._objects = confined._objects  # noqa: SLF001 - same run: same volumes and network

    def _spec(self, role: str, spec: PairSpec, argv: list[str], **kw: object) -> RunSpec:
        base = super()._spec(role, spec, argv, **kw)
        base.labels = labels_for(self.run_id, SCENARIO, role, {"seccomp": "unconfined"})
        base.security_opt = [*base.security_opt, "seccomp=unconfined"]
        return base


def main() -> int:
    """Run the experiment; the JSON document goes to stdout, progress to stderr."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mechanisms", default=",".join(MECHANISMS))
    args = ap.parse_args()
    mechanisms = [m.strip() for m in args.mechanisms.split(",") if m.strip()]
    unknown = sorted(set(mechanisms) - set(MECHANISMS))
    if unknown or args.repeat < 1 or args.iterations < 1 or args.size < 1:
        raise SystemExit(f"bad arguments (unknown mechanisms: {', '.join(unknown) or 'none'})")
    engine = Engine.connect()
    image = build.ensure_image(engine).image
    run_id = str(uuid.uuid4())
    confined = ContainerPairs(engine, image, run_id)
    unconfined = UnconfinedPairs(confined)
    hosts = HostPairs(host_binary(engine), run_id, confined.gateway(), build.cache_dir().parent / "bench")
    runners = {"host": hosts, "container": confined, "container-unconfined": unconfined}
    medians: dict[str, dict[str, list[int]]] = {}
    errors: list[str] = []
    try:
        for rep in range(args.repeat):
            for i, mech in enumerate(mechanisms):
                spec = PairSpec(mech, args.size, args.iterations, max(10, args.iterations // 10), 20.0, True)
                order = list(PLACEMENTS) if (rep + i) % 2 == 0 else list(reversed(PLACEMENTS))
                for name in order:
                    print(f"[{rep + 1}/{args.repeat}] {mech} {name}", file=sys.stderr, flush=True)
                    try:
                        rec = runners[name].run(spec)
                    except PairError as e:
                        errors.append(str(e))
                        print(f"  failed: {e}", file=sys.stderr, flush=True)
                        continue
                    medians.setdefault(mech, {}).setdefault(name, []).append(rec.rtt_ns_median)
    finally:
        hosts.close()
        _removed, problems = confined.close()  # every object of the run, unconfined ones included
        for p in problems:
            print(f"could not remove {p} (`labctl clean` will)", file=sys.stderr)
    summary: dict[str, dict[str, object]] = {}
    for mech, by in medians.items():
        row: dict[str, object] = {k: int(statistics.median(v)) for k, v in by.items()}
        host, ctr, unc = (row.get(p) for p in PLACEMENTS)
        if isinstance(host, int) and host > 0:
            row["container_over_host"] = round(ctr / host, 3) if isinstance(ctr, int) else None
            row["unconfined_over_host"] = round(unc / host, 3) if isinstance(unc, int) else None
        if isinstance(ctr, int) and isinstance(unc, int) and unc > 0:
            row["confined_over_unconfined"] = round(ctr / unc, 3)
        summary[mech] = row
    out = {"machine": this_machine().__dict__, "size": args.size, "iterations": args.iterations,
           "repeat": args.repeat, "pinned": True, "rtt_ns_median_of_medians": summary,
           "all_medians": medians, "errors": errors}
    print(json.dumps(out, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
