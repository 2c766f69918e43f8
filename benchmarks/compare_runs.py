"""Do two ``labctl bench --format json`` runs agree? Per mechanism and size, the
median container/host ratio of each run (paired rounds), their difference, and each
run's noise verdict. A row agrees when both medians are within 10 % of each other;
a row either run flagged noisy is reported as such, not as a disagreement.

    python benchmarks/compare_runs.py benchmarks/results/paired-run-1.json benchmarks/results/paired-run-2.json

Exit 0 when every row agrees or is flagged, 1 otherwise.
"""

from __future__ import annotations

import json
import sys

AGREE = 0.10


def rows(path: str) -> dict[tuple[str, int], dict]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {(p["mechanism"], p["size"]): p for p in doc.get("paired", [])}


def main(a_path: str, b_path: str) -> int:
    a, b = rows(a_path), rows(b_path)
    bad = 0
    print(f"{'mechanism':<16} {'size':>8}  {'run A':>22}  {'run B':>22}  {'diff':>6}  outcome")
    for key in sorted(set(a) & set(b)):
        pa, pb = a[key], b[key]
        diff = abs(pa["ratio_median"] - pb["ratio_median"]) / max(pa["ratio_median"], pb["ratio_median"])
        if pa["verdict"] != "stable" or pb["verdict"] != "stable":
            outcome = "flagged noisy"
        elif diff <= AGREE:
            outcome = "agree"
        else:
            outcome, bad = "DISAGREE", bad + 1

        def cell(p: dict) -> str:
            return f"{p['ratio_median']:.2f} [{p['ratio_q1']:.2f}-{p['ratio_q3']:.2f}] {p['verdict'][:6]}"

        print(f"{key[0]:<16} {key[1]:>8}  {cell(pa):>22}  {cell(pb):>22}  {100 * diff:5.1f}%  {outcome}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
