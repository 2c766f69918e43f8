"""Is the bench verdict honest? Checked offline on recorded ``labctl bench --format json``
runs (their per-round ratios), with the verdict of ``labctl.bench.rounds``:

1. calibration: for every row and every pair of runs, does the difference of the two
   runs' median ratios stay within sqrt(h1^2 + h2^2), the two intervals' half-widths
   combined? If the intervals are honest ~95 % intervals, about 95 % of the pairs do,
   and a difference beyond 1.41x that bound (10 % between two rows at the 5 % limit)
   is rare. Also with rounds of two consecutive runs pooled (as a run with twice the
   rounds would have them) against the third run, to see that the interval narrows
   no faster than the truth;
2. the same without the floor (each row's own spread only): what the floor buys;
3. decisions: the new verdict on the runs as recorded (rows stable in all runs, and
   whether they agree within 10 %), next to the verdict the runs were recorded with.

    python benchmarks/verdict_check.py RUN1.json RUN2.json [RUN3.json ...]

Runs must have been taken one after another with the same settings. Prints a report;
exit 0 when no row called stable in every run disagrees by more than 10 %.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labctl.bench import rounds as R  # noqa: E402

AGREE = 0.10
Row = tuple[str, int]


def load(path: str) -> tuple[dict[Row, list[float]], dict[Row, str]]:
    """Per-round ratios and the recorded verdict of every paired row of one run."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return ({(p["mechanism"], p["size"]): list(p["ratios"]) for p in doc["paired"]},
            {(p["mechanism"], p["size"]): p["verdict"] for p in doc["paired"]})


def judged(run: dict[Row, list[float]], floor: bool = True) -> dict[Row, tuple[str, float, float]]:
    """(verdict, median, half-width) per row; the floor is the run's typical spread."""
    fl = R.typical_spread(run.values()) if floor else 0.0
    return {k: (R.judge(v, fl)[0], statistics.median(v), R.assess(v, fl).half_width) for k, v in run.items()}


def calibration(pairs: list[tuple[dict, dict]], floor: bool) -> str:
    ratios = []
    for a, b in pairs:
        ja, jb = judged(a, floor), judged(b, floor)
        for k in ja.keys() & jb.keys():
            bound = math.hypot(ja[k][2], jb[k][2])
            if bound > 0 and math.isfinite(bound):
                ratios.append(abs(math.log(ja[k][1] / jb[k][1])) / bound)
    if len(ratios) < 2:
        return "too few row pairs"
    inside = sum(z <= 1 for z in ratios)
    beyond = sum(z > math.sqrt(2) for z in ratios)
    q = statistics.quantiles(ratios, n=20)
    return (f"{inside}/{len(ratios)} ({100 * inside / len(ratios):.0f} %) within the bound, "
            f"{beyond} beyond 1.41x; |diff|/bound median {statistics.median(ratios):.2f}, "
            f"90th pct {q[17]:.2f}, 95th {q[18]:.2f}")


def decisions(runs: list[dict[Row, str | tuple]], medians: list[dict[Row, float]]) -> tuple[str, int]:
    keys = set(runs[0]).intersection(*runs[1:])
    stable = [k for k in keys if all((v[k][0] if isinstance(v[k], tuple) else v[k]) == "stable" for v in runs)]
    bad = [(k, (max(m[k] for m in medians) - min(m[k] for m in medians)) / max(m[k] for m in medians))
           for k in stable]
    bad = [(k, d) for k, d in bad if d > AGREE]
    calls = sum((v[k][0] if isinstance(v[k], tuple) else v[k]) == "stable" for v in runs for k in keys)
    text = (f"{calls} stable calls of {len(keys) * len(runs)}; {len(stable)} rows stable in all {len(runs)} runs, "
            f"{len(bad)} of them more than 10 % apart" + "".join(f"\n    {k[0]} {k[1]}: {100 * d:.1f} %"
                                                               for k, d in bad))
    return text, len(bad)


def main(paths: list[str]) -> int:
    loaded = [load(p) for p in paths]
    runs = [r for r, _ in loaded]
    floors = ", ".join(f"{100 * R.typical_spread(r.values()):.1f} %" for r in runs)
    print(f"{len(runs)} runs, {len(runs[0])} rows each; typical spread per run (the floor): {floors}")
    pairs = list(itertools.combinations(runs, 2))
    pooled = [({k: a[k] + b[k] for k in a.keys() & b.keys()}, c)
              for a, b, c in zip(runs, runs[1:], runs[2:])]
    pooled += [(a, {k: b[k] + c[k] for k in b.keys() & c.keys()}) for a, b, c in zip(runs, runs[1:], runs[2:])]
    for label, floor in (("with the floor (the verdict)", True), ("without the floor", False)):
        print(f"calibration {label}:")
        print(f"  run against run:               {calibration(pairs, floor)}")
        if pooled:
            print(f"  two runs pooled against a 3rd: {calibration(pooled, floor)}")
    medians = [{k: statistics.median(v) for k, v in r.items()} for r in runs]
    new, bad = decisions([judged(r) for r in runs], medians)
    old, _ = decisions([v for _, v in loaded], medians)
    print(f"new verdict on the runs as recorded: {new}")
    print(f"verdict recorded with the runs:      {old}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
