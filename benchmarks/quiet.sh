# Sourced by the benchmark scripts (POSIX sh; run from the repository root):
#   load1        the 1-minute load average
#   wait_quiet   a bounded wait for a quiet machine: polls the load every 10 s until it is
#                below QUIET_LOAD (default 1.5), for at most QUIET_WAIT seconds (default 0)
QUIET_WAIT=${QUIET_WAIT:-0}
QUIET_LOAD=${QUIET_LOAD:-1.5}

load1() { cut -d' ' -f1 /proc/loadavg; }

wait_quiet() {
  deadline=$(( $(date +%s) + QUIET_WAIT ))
  while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }' && [ "$(date +%s)" -lt "$deadline" ]; do
    echo "load $(load1) >= $QUIET_LOAD: waiting for a quiet machine..." >&2
    sleep 10  # the polling interval of a bounded wait on the load average
  done
}
