#!/usr/bin/env python3
"""Output flood: what a chatty workload costs labctl against the engine's own floor.

One command (``python benchmarks/output_flood.py``) measures, for each event count
(default 3,000,000), ``--pairs`` PAIRED runs (default 5) of:

* ``floor``: what the engine can deliver, with nothing of labctl. A fresh Python process
  on the bare Docker SDK does the same job as ``labctl run`` does for this scenario:
  create the writer container (same image, command, user, no network, read-only root,
  no capabilities, no-new-privileges, and the engine's default log driver and options,
  which labctl's containers get too), attach (raw socket), start it, read the attach
  stream to its end and throw the bytes away (no demultiplexing, no parsing), wait for
  the exit code, remove the container. Wall from spawn to exit of that process; its
  ``stream_s`` is start -> end of stream alone.
* ``labctl``: ``labctl run`` of a generated scenario whose writer prints one JSON event
  per write (``sysv-writer --count N --interval 0``), with an ``events`` check that
  counts every ``wrote`` event and wants ``count`` strictly rising, an ``output`` check
  and an ``exit`` check, as a child process. Wall from spawn to exit, the child's peak
  RSS (``os.wait4`` ru_maxrss) and CPU seconds (user + system; per event: the figure the
  machine's load moves least), the scenario's own duration. The run must pass.

The two alternate (floor first in even pairs, labctl first in odd ones) and each pair
gives ratio = labctl wall / floor wall, so load from other processes that lasts longer
than one pair cancels out. Printed: every pair with the 1-minute load average at its
start, the median ratio, the worst pair, the spread (min-max) of the ratios, and NOISY
when the floor itself varies by more than 25 % ((max - min) / median of the floor walls):
the machine was not steady enough for the ratios to mean much.

``--ingest`` adds labctl's output path alone, in this process with no engine: the same
event lines (in chunks as the engine delivers them) fed to ``labctl.runtime.logs.Output`` with
the same checks' consumers, timed; events/s.

Prints the table on stderr and a JSON document on stdout (``--out PATH`` also writes it).
Targets: 3M events: median ratio <= 1.2, worst pair <= 1.5, labctl peak RSS <= 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABCTL = [sys.executable, "-m", "labctl"]

SCENARIO = """\
version: 1
name: output-flood
description: |
  A writer that prints one JSON event per write, {count} times, as fast as it can.
timeout: 300s
containers:
  writer:
    workload: sysv-writer
    args: [--count, {count}, --interval, "0", --rmid]
    timeout: 280s
checks:
  - name: every write seen, count strictly rising
    events: {{container: writer, event: wrote, min: {count}, max: {count}, rising: count}}
    timeout: 250s
  - name: the writer removed its segment
    output: {{container: writer, matches: '"event":"removed"'}}
    timeout: 30s
  - name: the writer exits 0
    exit: {{container: writer, code: 0}}
    timeout: 30s
"""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


TARGETS = {"median_ratio": 1.2, "worst_ratio": 1.5, "peak_rss_mb": 50, "floor_noisy_spread": 0.25}


def _child(argv: list[str]) -> tuple[float, int, bytes, bytes, float, float]:
    """Run ``argv`` to its end: (wall s, exit code, stdout, stderr, peak RSS MB of the child,
    its CPU seconds, user + system)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    # communicate() reaped it; each measurement runs in its own --_one child (below), so
    # RUSAGE_CHILDREN's max is this child's own peak
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, proc.returncode, out, err, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime


def run_labctl(count: int) -> dict:
    """One real ``labctl run`` over the flood scenario; wall, peak RSS, verdict."""
    with tempfile.TemporaryDirectory(prefix="labctl-flood-") as tmp:
        path = Path(tmp) / "flood.yaml"
        path.write_text(SCENARIO.format(count=count))
        wall, code, out, err, rss, cpu = _child([*LABCTL, "run", str(path), "--format", "json"])
    status, scenario_s = "?", None
    try:
        sc = json.loads(out)["scenarios"][0]
        status, scenario_s = sc["status"], sc["duration_s"]
        if status != "passed":
            _say(json.dumps(sc, indent=1)[:3000])
    except (ValueError, KeyError, IndexError):
        _say(err.decode(errors="replace")[-2000:])
    return {"mode": "labctl", "events": count, "exit": code, "status": status, "wall_s": round(wall, 3),
            "scenario_s": scenario_s, "peak_rss_mb": round(rss, 1), "cpu_s": round(cpu, 2),
            "cpu_us_per_event": round(cpu / count * 1e6, 3)}


FLOOR = r"""
import sys, time, uuid, json
import docker, docker.errors
image, count = sys.argv[1], sys.argv[2]
client = docker.from_env(timeout=300)
ct = client.containers.create(image, ["sysv-writer", "--count", count, "--interval", "0", "--rmid"],
                              # not io.labctl.* labels: a sweep by labctl's labels elsewhere
                              # on a shared engine must not remove the floor's container
                              labels={"labctl-benchmark": "output-flood-floor", "run": str(uuid.uuid4())},
                              network_mode="none", user="65534:65534", read_only=True, cap_drop=["ALL"],
                              security_opt=["no-new-privileges"])
try:
    raw = client.api.attach_socket(ct.id, params={"stdout": 1, "stderr": 1, "stream": 1})
    sock = raw._sock
    sock.settimeout(None)
    buf = bytearray(1 << 18)
    t0 = time.monotonic()
    ct.start()
    received = 0
    while n := sock.recv_into(buf):
        received += n
    stream_s = time.monotonic() - t0
    code = ct.wait(timeout=60)["StatusCode"]
finally:
    try:
        ct.remove(force=True)
    except docker.errors.NotFound:
        pass
    client.close()
print(json.dumps({"stream_s": round(stream_s, 3), "bytes": received, "exit": code}))
"""


def run_floor(count: int, image: str) -> dict:
    """The engine's floor for the same job (see the module docstring), in a fresh process."""
    wall, code, out, err, rss, cpu = _child([sys.executable, "-c", FLOOR, image, str(count)])
    if code != 0:
        _say(err.decode(errors="replace")[-2000:])
        raise SystemExit(f"the floor run failed (exit {code})")
    res = json.loads(out)
    return {"mode": "floor", "events": count, "wall_s": round(wall, 3), "stream_s": res["stream_s"],
            "bytes": res["bytes"], "exit": res["exit"], "peak_rss_mb": round(rss, 1), "cpu_s": round(cpu, 2)}


def _one(mode: str, count: int, image: str) -> dict:
    """One measurement in a child of a fresh process (so ru_maxrss is its own)."""
    load = round(os.getloadavg()[0], 2)
    res = json.loads(subprocess.run([sys.executable, __file__, "--_one", mode, str(count), image], check=True,
                                    stdout=subprocess.PIPE, cwd=ROOT).stdout)
    res["load_1m"] = load
    return res


def paired(count: int, pairs: int, image: str) -> dict:
    """``pairs`` alternating floor/labctl measurements and their ratios."""
    rows = []
    for i in range(pairs):
        order = ("floor", "labctl") if i % 2 == 0 else ("labctl", "floor")
        got = {m: _one(m, count, image) for m in order}
        fl, lc = got["floor"], got["labctl"]
        ratio = lc["wall_s"] / fl["wall_s"]
        rows.append({"pair": i + 1, "order": "/".join(order), "floor": fl, "labctl": lc, "ratio": round(ratio, 3)})
        _say(f"  pair {i + 1} ({'/'.join(order)}): floor {fl['wall_s']:.2f} s (stream {fl['stream_s']:.2f}, "
             f"load {fl['load_1m']}), labctl {lc['wall_s']:.2f} s ({lc['status']}, scenario {lc['scenario_s']} s, "
             f"RSS {lc['peak_rss_mb']} MB, CPU {lc['cpu_us_per_event']} us/event, load {lc['load_1m']}): "
             f"ratio {ratio:.3f}")
    ratios = sorted(r["ratio"] for r in rows)
    floors = [r["floor"]["wall_s"] for r in rows]
    floor_spread = (max(floors) - min(floors)) / statistics.median(floors)
    summary = {
        "events": count, "pairs": rows,
        "ratio_median": round(statistics.median(ratios), 3), "ratio_worst": ratios[-1],
        "ratio_min": ratios[0], "ratio_spread": round(ratios[-1] - ratios[0], 3),
        "floor_median_s": round(statistics.median(floors), 3), "floor_spread": round(floor_spread, 3),
        "labctl_peak_rss_mb": max(r["labctl"]["peak_rss_mb"] for r in rows),
        "labctl_cpu_us_per_event_median": statistics.median(r["labctl"]["cpu_us_per_event"] for r in rows),
        "all_passed": all(r["labctl"]["status"] == "passed" for r in rows),
        "noisy": floor_spread > TARGETS["floor_noisy_spread"],
        "load_1m": [r[m]["load_1m"] for r in rows for m in ("floor", "labctl")],
    }
    summary["meets_targets"] = (summary["all_passed"] and summary["ratio_median"] <= TARGETS["median_ratio"]
                                and summary["ratio_worst"] <= TARGETS["worst_ratio"]
                                and summary["labctl_peak_rss_mb"] <= TARGETS["peak_rss_mb"])
    return summary


def _lines(count: int) -> list[bytes]:
    """The writer's event lines, batched into chunks of about 16 KiB (what an attach
    stream hands over when the writer is faster than the reader)."""
    chunks, buf, size = [], [], 0
    for i in range(1, count + 1):
        line = b'{"event":"wrote","role":"sysv-writer","t_ms":%d,"count":%d}\n' % (i // 1000, i)
        buf.append(line)
        size += len(line)
        if size >= 16384:
            chunks.append(b"".join(buf))
            buf, size = [], 0
    if buf:
        chunks.append(b"".join(buf))
    return chunks


def ingest(count: int) -> dict:
    """labctl's output path alone: chunks -> lines -> events -> the checks' tallies."""
    from labctl.checks.evaluate import tally
    from labctl.runtime.logs import Output
    from labctl.scenario import load_text

    scenario = load_text(SCENARIO.format(count=count), "flood.yaml")
    chunks = _lines(count)
    out = Output()
    tallies = [t for t in (tally(ch.body, out) for ch in scenario.checks) if t is not None]
    t0, c0 = time.perf_counter(), time.process_time()
    for chunk in chunks:
        out.feed("stdout", chunk)
    out.close()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = tallies[0]
    assert events.matched == count and events.not_rising is None, "the ingest lost or misread events"
    return {"mode": "ingest", "events": count, "seconds": round(secs, 3), "cpu_s": round(cpu, 3),
            "events_per_s": round(count / secs), "events_per_cpu_s": round(count / cpu)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, nargs="+", default=[3_000_000],
                    help="event counts to measure (default: 3000000)")
    ap.add_argument("--pairs", type=int, default=5, help="paired floor/labctl runs per count (default 5)")
    ap.add_argument("--ingest", action="store_true", help="also time labctl's output path alone, in-process")
    ap.add_argument("--skip-ingest", action="store_true", help="(the default) no in-process ingest measurement")
    ap.add_argument("--out", help="also write the JSON document here")
    args = ap.parse_args()

    from labctl.images.build import ensure_image
    from labctl.runtime import Engine

    engine = Engine.connect()
    try:
        image = str(ensure_image(engine))
        engine_version = engine.describe() if hasattr(engine, "describe") else ""
    finally:
        engine.close()
    load_start = [round(x, 2) for x in os.getloadavg()]
    series, ingests = [], []
    for n in args.events:
        if args.ingest and not args.skip_ingest:
            _say(f"ingest: {n:,} events ...")
            ingests.append(ingest(n))
            _say(f"  {ingests[-1]['events_per_s']:,} events/s")
        _say(f"{args.pairs} pairs at {n:,} events (floor = bare SDK create/attach/start/read/wait/remove):")
        series.append(paired(n, args.pairs, image))
    doc = {"command": "python benchmarks/output_flood.py " + " ".join(sys.argv[1:]),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "kernel": platform.release(),
                       "python": platform.python_version(), "engine": str(engine_version),
                       "load_avg_at_start": load_start,
                       "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
           "targets": TARGETS, "series": series, "ingest": ingests}
    _say("\nevents     pairs  median  worst  spread(min-max)  floor median  floor spread  peak RSS  verdict")
    for s in series:
        verdict = ("NOISY (the floor varied by more than 25 %)" if s["noisy"] else "steady floor") + \
            ("; targets met" if s["meets_targets"] else "; TARGETS MISSED")
        _say(f"{s['events']:>9,}  {len(s['pairs']):>5}  {s['ratio_median']:>6.3f}  {s['ratio_worst']:>5.3f}  "
             f"{s['ratio_min']:.3f}-{s['ratio_worst']:.3f}      {s['floor_median_s']:>8.2f} s  "
             f"{100 * s['floor_spread']:>10.1f} %  {s['labctl_peak_rss_mb']:>5.1f} MB  {verdict}")
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(s["meets_targets"] for s in series) else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_one":
        mode, count, image = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        print(json.dumps(run_labctl(count) if mode == "labctl" else run_floor(count, image)))
        sys.exit(0)
    sys.exit(main())
