#!/bin/sh
# Reproduce every benchmark figure of docs/benchmarks.md (and the README) in one command:
#   benchmarks/run_all.sh            (from anywhere, with labctl's dependencies installed)
#   PYTHON=/path/to/venv/bin/python benchmarks/run_all.sh
# Writes to benchmarks/results/:
#   bench-pinned.{json,txt}, bench.png   labctl bench, server on CPU 0, client on CPU 1
#   bench-unpinned.{json,txt}            the same with --no-pin
#   suite-speed.json                     labctl run --jobs N vs bare SDK lifecycles; warm and cold build
#   seccomp.json                         container pairs with and without Docker's seccomp filter
#   run-info.txt                         when, where, load before and after, seconds per step
# About 10 minutes on 2 cores. Run it on an otherwise idle machine: it prints the load
# average first; QUIET_WAIT=SECONDS waits (bounded) for the 1-minute load to drop below
# QUIET_LOAD (default 1.5) before starting.
# The cold build uses temporary caches and a throwaway image tag: the developer's
# ~/.cache and labctl/shmlab images are left as they were.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=benchmarks/results

if ! $PY -c 'import docker, yaml, labctl' 2>/dev/null; then
  echo "run_all.sh: $PY cannot import labctl and its dependencies; set PYTHON to the venv's python" >&2
  exit 2
fi
LABCTL="$PY -m labctl"
mkdir -p "$OUT"

. benchmarks/quiet.sh
wait_quiet
echo "load average before: $(cat /proc/loadavg)" >&2

INFO="$OUT/run-info.txt"
{
  echo "command: benchmarks/run_all.sh"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "docker: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
  echo "loadavg before: $(cat /proc/loadavg)"
} > "$INFO"

T0=$(date +%s)
step() {  # step NAME: record the seconds since the previous step
  now=$(date +%s); echo "step $1: $((now - T0)) s" >> "$INFO"; T0=$now
}

$LABCTL build >&2
step build

# 1. the IPC benchmark, pinned (server CPU 0, client CPU 1): the reference figures
if $PY -c 'import matplotlib' 2>/dev/null; then CHART="--chart $OUT/bench.png"; else
  CHART=""; echo "matplotlib missing: no chart (pip install -e '.[bench]')" >&2; fi
$LABCTL bench --format json $CHART > "$OUT/bench-pinned.json"
# the same run rendered as the terminal table (from the JSON, no second measurement)
$PY benchmarks/table.py "$OUT/bench-pinned.json" > "$OUT/bench-pinned.txt"
step bench-pinned

# 2. the same, unpinned (the scheduler places both processes): what blocking
#    mechanisms cost when a wake-up stays on one CPU
$LABCTL bench --format json --no-pin --rounds 3 > "$OUT/bench-unpinned.json"
$PY benchmarks/table.py "$OUT/bench-unpinned.json" > "$OUT/bench-unpinned.txt"
step bench-unpinned

# 2b. do two consecutive runs agree? SysV shm spin, every size, 5 paired rounds or more each;
#     compare_runs.py prints per size both medians, their difference and the verdicts
$LABCTL bench --format json --mechanisms sysv-shm-spin > "$OUT/paired-run-1.json"
$LABCTL bench --format json --mechanisms sysv-shm-spin > "$OUT/paired-run-2.json"
$PY benchmarks/compare_runs.py "$OUT/paired-run-1.json" "$OUT/paired-run-2.json" > "$OUT/paired-agreement.txt" || true
step paired-agreement

# 3. seccomp: the same container pairs with and without Docker's default filter (64 B)
$PY benchmarks/seccomp_effect.py --repeat 3 --iterations 10000 > "$OUT/seccomp.json"
step seccomp

# 4. suite speed: labctl run --jobs N against bare SDK lifecycles, warm and cold build
$PY benchmarks/suite_speed.py --cold --out "$OUT/suite-speed.json" > /dev/null
step suite-speed

echo "loadavg after: $(cat /proc/loadavg)" >> "$INFO"
echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$INFO"
cat "$OUT/bench-pinned.txt"
cat "$INFO" >&2
echo "results in $OUT/" >&2
