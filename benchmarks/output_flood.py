#!/usr/bin/env python3
"""Output flood: what a chatty workload costs labctl in memory and time.

One command (``python benchmarks/output_flood.py``) measures, for each event count
(default 1,000,000 and 3,000,000):

* ``run``: a real ``labctl run`` as a child process on a generated scenario whose writer
  prints one JSON event per write (``sysv-writer --count N --interval 0``), with an
  ``events`` check that counts every ``wrote`` event and wants ``count`` strictly rising,
  an ``output`` check and an ``exit`` check. Wall time from spawn to exit, the child's
  peak RSS (``os.wait4`` ru_maxrss), and events/s = N / wall. The run must pass.
* ``engine``: the floor under ``run``: the same writer in a bare container (docker SDK, no
  labctl), its attach stream read raw and thrown away; wall from start to end of stream.
  What ``run`` takes beyond it is labctl's share (start, checks, teardown, parsing).
* ``ingest``: labctl's output path alone, in this process, with no engine: the same
  event lines (in chunks as the engine delivers them) fed to ``labctl.runtime.logs.Output``
  with the same checks' consumers, timed; events/s.

Prints a table on stderr and a JSON document on stdout (``--out PATH`` also writes it).
Targets (issue 11): 3M events: peak RSS < 150 MB and wall < 15 s for the run; ingest
>= 300,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


def run_flood(count: int, jobs_env: dict[str, str]) -> dict:
    """One real ``labctl run`` over the flood scenario; wall, peak RSS, verdict."""
    with tempfile.TemporaryDirectory(prefix="labctl-flood-") as tmp:
        path = Path(tmp) / "flood.yaml"
        path.write_text(SCENARIO.format(count=count))
        t0 = time.monotonic()
        proc = subprocess.Popen([*LABCTL, "run", str(path), "--format", "json"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=jobs_env)
        out, err = proc.communicate()
        wall = time.monotonic() - t0
        # communicate() reaped the child; its rusage is in RUSAGE_CHILDREN (max over children)
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    status = "?"
    scenario_s = None
    try:
        report = json.loads(out)
        sc = report["scenarios"][0]
        status = sc["status"]
        scenario_s = sc["duration_s"]
        if status != "passed":
            _say(json.dumps(sc, indent=1)[:3000])
    except (ValueError, KeyError, IndexError):
        _say(err.decode(errors="replace")[-2000:])
    return {"mode": "run", "events": count, "exit": proc.returncode, "status": status,
            "wall_s": round(wall, 2), "scenario_s": scenario_s, "peak_rss_mb": round(rss_kb / 1024, 1),
            "events_per_s": round(count / wall)}


def engine_floor(count: int) -> dict:
    """The writer's output through the engine with nothing of labctl: create, attach
    (raw socket), start, read to the end of the stream, remove."""
    import uuid

    import docker

    from labctl.images.build import ensure_image
    from labctl.runtime import Engine
    from labctl.runtime.labels import labels_for

    engine = Engine.connect()
    image = str(ensure_image(engine))
    client = docker.from_env(timeout=120)
    ct = client.containers.create(image, ["sysv-writer", "--count", str(count), "--interval", "0", "--rmid"],
                                  labels=labels_for(str(uuid.uuid4()), "output-flood", "engine-floor"),
                                  network_mode="none", user="65534:65534")
    try:
        sock = client.api.attach_socket(ct.id, params={"stdout": 1, "stderr": 1, "stream": 1})
        raw = sock._sock  # the hijacked connection: what the engine sends, unparsed
        raw.settimeout(300)
        t0 = time.monotonic()
        ct.start()
        received = 0
        while chunk := raw.recv(1 << 20):
            received += len(chunk)
        wall = time.monotonic() - t0
    finally:
        ct.remove(force=True)
        client.close()
        engine.close()
    return {"mode": "engine", "events": count, "wall_s": round(wall, 2), "bytes": received,
            "events_per_s": round(count / wall)}


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
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000],
                    help="event counts to measure (default: 1000000 3000000)")
    ap.add_argument("--skip-run", action="store_true", help="only the in-process ingest measurement")
    ap.add_argument("--skip-ingest", action="store_true", help="no in-process ingest measurement")
    ap.add_argument("--skip-engine", action="store_true", help="no bare-engine floor measurement")
    ap.add_argument("--out", help="also write the JSON document here")
    args = ap.parse_args()

    results = []
    for n in args.events:
        if not args.skip_ingest:
            _say(f"ingest: {n:,} events ...")
            results.append(ingest(n))
            _say(f"  {results[-1]['events_per_s']:,} events/s")
        if not args.skip_engine:
            _say(f"engine floor: {n:,} events ...")
            results.append(engine_floor(n))
            _say(f"  {results[-1]['wall_s']} s, {results[-1]['events_per_s']:,} events/s")
        if not args.skip_run:
            _say(f"labctl run: {n:,} events ...")
            # each run in its own child of a fresh process, so ru_maxrss is this run's
            res = json.loads(subprocess.run([sys.executable, __file__, "--_one-run", str(n)], check=True,
                                            stdout=subprocess.PIPE, cwd=ROOT).stdout)
            results.append(res)
            _say(f"  {res['status']} (exit {res['exit']}) in {res['wall_s']} s, peak RSS {res['peak_rss_mb']} MB, "
                 f"{res['events_per_s']:,} events/s")
    doc = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                       "kernel": platform.release(), "python": platform.python_version(),
                       "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
           "targets": {"run_3m_peak_rss_mb": 150, "run_3m_wall_s": 15, "ingest_events_per_s": 300_000},
           "results": results}
    _say("\nmode    events      wall/s  peak RSS MB  events/s")
    for r in results:
        _say(f"{r['mode']:<7} {r['events']:>9,}  {r.get('wall_s', r.get('seconds')):>7}  "
             f"{r.get('peak_rss_mb', '-'):>11}  {r['events_per_s']:>9,}")
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    bad = [r for r in results if r["mode"] == "run" and r["status"] != "passed"]
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_one-run":
        print(json.dumps(run_flood(int(sys.argv[2]), dict(os.environ))))
        sys.exit(0)
    sys.exit(main())
