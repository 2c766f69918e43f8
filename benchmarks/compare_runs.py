"""Do consecutive ``labctl bench --format json`` runs agree? Per mechanism and size, the
median container/host ratio of each run (paired rounds), their largest difference, and
each run's verdict (with the row's interval and rounds where the run has them). A row
called ``stable`` in every run must agree: the largest and the
smallest of its medians within 10 % of the largest. A row some run flagged noisy is
reported as such, not as a disagreement (the verdict said not to trust it).

    python benchmarks/compare_runs.py RUN1.json RUN2.json [RUN3.json ...]

Exit 0 when every row called stable in all runs agrees, 1 otherwise.
"""

from __future__ import annotations

import json
import sys

AGREE = 0.10


def rows(path: str) -> dict[tuple[str, int], dict]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {(p["mechanism"], p["size"]): p for p in doc.get("paired", [])}


def main(paths: list[str]) -> int:
    runs = [rows(p) for p in paths]
    keys = set(runs[0]).intersection(*runs[1:])
    bad = stable_rows = 0
    head = "".join(f"  {'run ' + str(i + 1):>22}" for i in range(len(runs)))
    print(f"{'mechanism':<16} {'size':>8}{head}  {'diff':>6}  outcome")
    for key in sorted(keys):
        ps = [r[key] for r in runs]
        meds = [p["ratio_median"] for p in ps]
        diff = (max(meds) - min(meds)) / max(meds)
        if any(p["verdict"] != "stable" for p in ps):
            outcome = "flagged noisy in run " + ",".join(str(i + 1) for i, p in enumerate(ps) if p["verdict"] != "stable")
        elif diff <= AGREE:
            outcome, stable_rows = "agree", stable_rows + 1
        else:
            outcome, bad, stable_rows = "DISAGREE", bad + 1, stable_rows + 1

        def cell(p: dict) -> str:
            if "interval_pct" in p:  # median, the interval's half-width and the rounds the row got
                return f"{p['ratio_median']:.2f} +-{p['interval_pct']:.1f}% {p['rounds']}r {p['verdict'][:6]}"
            return f"{p['ratio_median']:.2f} [{p['ratio_q1']:.2f}-{p['ratio_q3']:.2f}] {p['verdict'][:6]}"

        print(f"{key[0]:<16} {key[1]:>8}" + "".join(f"  {cell(p):>22}" for p in ps) + f"  {100 * diff:5.1f}%  {outcome}")
    print(f"\n{stable_rows} of {len(keys)} rows called stable in all {len(runs)} runs; "
          f"{bad} of them disagree by more than {100 * AGREE:.0f} %")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
