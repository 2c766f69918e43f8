"""How fast ``labctl inspect`` answers for many running containers.

Starts N containers that labctl did not create (plain engine API calls, the workload
image, no network) in G IPC namespaces: each namespace a ``shareable`` donor holding a
SysV segment and N/G - 1 joiners; then times ``labctl inspect --label ... --format json``
end to end as a user runs it (a new process: start-up, engine connection, image check,
listing, one probe per namespace in parallel, memory reads), R times, and prints the
median and the spread, beside the median time of one bare container run to exit (create,
start, wait, logs, remove) measured between the inspects: on a loaded machine the ratio
says more than the seconds. Removes its containers by label at the end, whatever happened.

    python benchmarks/inspect_speed.py                       # 50 containers, 25 namespaces, docker
    python benchmarks/inspect_speed.py --containers 50 --namespaces 50 --engine podman

The aim: 50 running containers answered in <= 5 s on this machine.
Not a timed test: timings on a shared 2-core machine are noisy; compare runs made together.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from labctl.images.build import ensure_image
from labctl.runtime import Engine, RunSpec

BENCH_LABEL = "io.labctl-bench.inspect"  # not io.labctl.*: these stand for a user's containers


def start(engine: Engine, image: str, tag: str, containers: int, namespaces: int) -> None:
    per = max(1, containers // namespaces)

    def make(i: int) -> None:
        donor = f"inspbench-{tag}-{i}-0"
        engine.api.start(engine.create_container(RunSpec(
            name=donor, image=image, labels={BENCH_LABEL: tag}, ipc_mode="shareable", mem_limit="16m",
            command=["sysv-writer", "--key", str(1000 + i), "--count", "0", "--interval", "1s", "--quiet"]),
            donor).id)
        for j in range(1, per):
            name = f"inspbench-{tag}-{i}-{j}"
            engine.api.start(engine.create_container(RunSpec(
                name=name, image=image, labels={BENCH_LABEL: tag}, ipc_mode=f"container:{donor}",
                mem_limit="16m", command=["hold"]), name).id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(make, range(namespaces)))


def remove(engine: Engine, tag: str) -> None:
    rows = engine.api.containers(all=True, filters={"label": [f"{BENCH_LABEL}={tag}"]})
    # joiners first: Podman refuses to remove a donor others joined
    rows.sort(key=lambda r: str(r["Names"][0]).endswith("-0"))
    for r in rows:
        try:
            engine.api.remove_container(r["Id"], force=True, v=True)
        except Exception as e:  # noqa: BLE001 - report and go on: the rest must go too
            print(f"could not remove {r['Names'][0]}: {e}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--namespaces", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engine", choices=["docker", "podman"], default="docker")
    a = ap.parse_args()
    engine = Engine.connect(a.engine)
    image = ensure_image(engine).image
    tag = uuid.uuid4().hex[:8]
    times: list[float] = []
    one_run: list[float] = []
    try:
        t0 = time.monotonic()
        start(engine, image, tag, a.containers, a.namespaces)
        print(f"started {a.containers} containers in {a.namespaces} IPC namespaces on {engine.describe()} "
              f"({time.monotonic() - t0:.1f} s)", file=sys.stderr)
        for _ in range(a.repeat):
            # the load reference, taken next to each inspect: one bare container run to exit
            t = time.monotonic()
            engine.run_to_exit(RunSpec(name=f"inspbench-{tag}-ref", image=image, labels={BENCH_LABEL: tag},
                                       command=["probe", "--ns"]), 60.0)
            one_run.append(time.monotonic() - t)
            t = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "labctl", "inspect", "--engine", a.engine, "--label",
                                  f"{BENCH_LABEL}={tag}", "--format", "json"], capture_output=True, text=True,
                                 check=False)
            times.append(time.monotonic() - t)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            doc = json.loads(out.stdout)
            seen = sum(len(ns["containers"]) for ns in doc["namespaces"])
            probed = sum(ns["inspected"] for ns in doc["namespaces"])
            segs = sum(len(ns["segments"] or []) for ns in doc["namespaces"])
            assert seen == a.containers and probed == a.namespaces and segs == a.namespaces, (seen, probed, segs)
    finally:
        remove(engine, tag)
    print(json.dumps({"engine": a.engine, "containers": a.containers, "namespaces": a.namespaces,
                      "runs": len(times), "median_s": round(statistics.median(times), 2),
                      "min_s": round(min(times), 2), "max_s": round(max(times), 2),
                      "inspect_duration_s_last": doc["duration_s"],
                      "one_container_run_median_s": round(statistics.median(one_run), 2),
                      "ratio_to_one_container_run": round(statistics.median(times) / statistics.median(one_run), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
