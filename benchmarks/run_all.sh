#!/bin/sh
# Reproduce every benchmark figure of docs/benchmarks.md (and the README) in one command:
#   benchmarks/run_all.sh            (from the repository root, with labctl installed)
# Writes benchmarks/results/{bench-pinned,bench-unpinned,suite-speed}.json, the tables
# as .txt, and benchmarks/results/bench.png (needs matplotlib: pip install -e '.[bench]').
# Takes about 5 minutes on 2 cores; run it on an otherwise idle machine.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=benchmarks/results
mkdir -p "$OUT"
LABCTL="$PY -m labctl"

$LABCTL build >&2

# 1. the IPC benchmark, pinned (server CPU 0, client CPU 1): the reference figures
if $PY -c 'import matplotlib' 2>/dev/null; then CHART="--chart $OUT/bench.png"; else
  CHART=""; echo "matplotlib missing: no chart (pip install -e '.[bench]')" >&2; fi
$LABCTL bench --format json $CHART > "$OUT/bench-pinned.json"
# the same run rendered as the terminal table (from the JSON, no second measurement)
$PY benchmarks/table.py "$OUT/bench-pinned.json" > "$OUT/bench-pinned.txt"

# 2. the same, unpinned (the scheduler places both processes): what blocking
#    mechanisms cost when a wake-up stays on one CPU
$LABCTL bench --format json --no-pin > "$OUT/bench-unpinned.json"
$PY benchmarks/table.py "$OUT/bench-unpinned.json" > "$OUT/bench-unpinned.txt"

# 3. suite speed: labctl run --jobs N against bare SDK lifecycles, warm and cold build
$PY benchmarks/suite_speed.py --cold --out "$OUT/suite-speed.json" > /dev/null

cat "$OUT/bench-pinned.txt"
echo "results in $OUT/" >&2
