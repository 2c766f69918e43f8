#!/usr/bin/env python3
"""Evidence for docs/benchmarks.md: what Docker's default seccomp filter costs each
mechanism. Runs container pairs (64 B) with the default profile and with
``seccomp=unconfined`` (everything else hardened as usual), interleaved, ``--repeat``
times, plus host pairs as the baseline, and prints the median of the medians as JSON.

    python benchmarks/seccomp_effect.py --repeat 3 > benchmarks/results/seccomp.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl import build  # noqa: E402
from labctl.bench import host_binary  # noqa: E402
from labctl.bench.model import MECHANISMS, this_machine  # noqa: E402
from labctl.bench.pairs import ContainerPairs, HostPairs, PairSpec  # noqa: E402
from labctl.runtime import Engine, RunSpec  # noqa: E402


class UnconfinedPairs(ContainerPairs):
    """Container pairs without the seccomp filter (only for this measurement)."""

    def _spec(self, role: str, spec: PairSpec, argv: list[str], **kw: object) -> RunSpec:
        base = super()._spec(role, spec, argv, **kw)
        base.security_opt = [*base.security_opt, "seccomp=unconfined"]
        return base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mechanisms", default=",".join(MECHANISMS))
    args = ap.parse_args()
    engine = Engine.connect()
    image = build.ensure_image(engine).image
    run_id = str(uuid.uuid4())
    confined = ContainerPairs(engine, image, run_id)
    unconfined = UnconfinedPairs(engine, image, run_id)
    hosts = HostPairs(host_binary(engine), run_id, confined.gateway(), build.cache_dir().parent / "bench")
    runners = {"host": hosts, "container": confined, "container-unconfined": unconfined}
    medians: dict[str, dict[str, list[int]]] = {}
    try:
        for rep in range(args.repeat):
            for mech in args.mechanisms.split(","):
                spec = PairSpec(mech, args.size, args.iterations, max(10, args.iterations // 10), 20.0, True)
                order = list(runners) if rep % 2 == 0 else list(reversed(runners))
                for name in order:
                    print(f"[{rep + 1}/{args.repeat}] {mech} {name}", file=sys.stderr, flush=True)
                    rec = runners[name].run(spec)
                    medians.setdefault(mech, {}).setdefault(name, []).append(rec.rtt_ns_median)
    finally:
        hosts.close()
        confined.close()
    out = {"machine": this_machine().__dict__, "size": args.size, "repeat": args.repeat, "pinned": True,
           "rtt_ns_median_of_medians": {m: {k: int(statistics.median(v)) for k, v in d.items()}
                                        for m, d in medians.items()}}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
