#!/bin/sh
# The three performance measurements of docs/performance.md, in one command, nothing else:
#   benchmarks/perf_targets.sh                                  (from anywhere)
#   PYTHON=/path/to/venv/bin/python QUIET_WAIT=300 benchmarks/perf_targets.sh
# Steps (a progress line on stderr before and after each, with the elapsed time):
#   1. orchestration: labctl run scenarios/sysv-shareable.yaml against docker compose up+down,
#      PAIRS_ORCH paired runs (default 7)           -> orchestration_pair.json
#   2. output flood: 3,000,000 events, PAIRS_FLOOD paired floor/labctl runs (default 5)
#                                                   -> output_flood.json
#   3. three consecutive default `labctl bench --format json` runs, then compare_runs.py
#                                                   -> bench-run-{1,2,3}.json, bench-agreement.txt
# into benchmarks/results/ (OUT=DIR elsewhere), with perf-targets-info.txt (when, commit,
# machine, load before and after each step, seconds per step, each step's exit code).
# About 20-30 minutes on a quiet 2-core machine (see docs/performance.md for the step times; a
# bench run takes 4 to 8 minutes: its extra rounds at most as long as its first five).
# Every step runs even when an earlier one missed its target; the exit code is 1 if any missed.
# QUIET_WAIT=SECONDS waits (bounded) for the 1-minute load to fall below QUIET_LOAD (1.5).
# A rehearsal of the script itself (~3 min, figures meaningless):
#   OUT=/tmp/rehearsal PAIRS_ORCH=1 PAIRS_FLOOD=1 FLOOD_EVENTS=10000 \
#     BENCH_ARGS="--mechanisms sysv-shm-spin --sizes 64 --rounds 3" benchmarks/perf_targets.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
PAIRS_ORCH=${PAIRS_ORCH:-7}
PAIRS_FLOOD=${PAIRS_FLOOD:-5}
# for a quick rehearsal of the script only (the targets are defined at the defaults):
FLOOD_EVENTS=${FLOOD_EVENTS:-3000000}
BENCH_ARGS=${BENCH_ARGS:-}

if ! $PY -c 'import docker, yaml, labctl' 2>/dev/null; then
  echo "perf_targets.sh: $PY cannot import labctl and its dependencies; set PYTHON to the venv's python" >&2
  exit 2
fi
mkdir -p "$OUT" || exit 2
LABCTL="$PY -m labctl"

. benchmarks/quiet.sh
wait_quiet

INFO="$OUT/perf-targets-info.txt"
START=$(date +%s)
{
  echo "command: benchmarks/perf_targets.sh (PAIRS_ORCH=$PAIRS_ORCH PAIRS_FLOOD=$PAIRS_FLOOD FLOOD_EVENTS=$FLOOD_EVENTS BENCH_ARGS='$BENCH_ARGS')"
  echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "docker: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
  echo "loadavg before: $(cat /proc/loadavg)"
} > "$INFO"

FAILED=""
say() { echo "perf_targets: [$(( $(date +%s) - START )) s] $*" >&2; }
# step NAME EXPECTED COMMAND...: run it, record seconds, exit code and the load after
step() {
  name=$1 expected=$2; shift 2
  say "$name: start (about $expected; load $(load1))"
  t0=$(date +%s)
  "$@"
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  echo "step $name: ${secs} s, exit $rc, loadavg after: $(cat /proc/loadavg)" >> "$INFO"
  [ "$rc" -eq 0 ] || FAILED="$FAILED $name"
  say "$name: done in ${secs} s (exit $rc)"
}

# Setup, untimed: the workload image, and labctl's bytecode. An installed wheel carries
# compiled modules, and an editable install writes them on its first run unless
# PYTHONDONTWRITEBYTECODE is set; compiling them here makes every measured start the
# start a user gets, not one that recompiles ~80 modules (~0.1 s of each labctl run).
say "setup: labctl build, python -m compileall labctl"
$LABCTL build >&2 || { echo "perf_targets.sh: labctl build failed" >&2; exit 3; }
$PY -m compileall -q labctl >/dev/null || true

orchestration() {
  $PY benchmarks/orchestration_pair.py --pairs "$PAIRS_ORCH" --out "$OUT/orchestration_pair.json" > /dev/null
}
flood() {
  $PY benchmarks/output_flood.py --events "$FLOOD_EVENTS" --pairs "$PAIRS_FLOOD" --out "$OUT/output_flood.json" > /dev/null
}
bench_run() {  # bench_run N: one default run, its JSON kept even when a pair failed (exit 1)
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  $LABCTL bench --format json $BENCH_ARGS > "$OUT/bench-run-$1.json"
}
compare() {
  $PY benchmarks/compare_runs.py "$OUT/bench-run-1.json" "$OUT/bench-run-2.json" "$OUT/bench-run-3.json" \
    > "$OUT/bench-agreement.txt"
  rc=$?
  cat "$OUT/bench-agreement.txt" >&2
  return $rc
}

step orchestration "$(( PAIRS_ORCH * 4 + 10 )) s" orchestration
step flood "$(( PAIRS_FLOOD * 45 )) s" flood
step bench-1 "4-8 min" bench_run 1
step bench-2 "4-8 min" bench_run 2
step bench-3 "4-8 min" bench_run 3
step compare "1 s" compare

{
  echo "loadavg after: $(cat /proc/loadavg)"
  echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(( $(date +%s) - START )) s)"
  echo "steps that missed a target or failed:${FAILED:- none}"
} >> "$INFO"
cat "$INFO" >&2
say "results in $OUT/; steps that missed a target or failed:${FAILED:- none}"
[ -z "$FAILED" ]
