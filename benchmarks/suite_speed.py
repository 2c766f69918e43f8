#!/usr/bin/env python3
"""Suite speed: how much labctl adds on top of the containers it runs.

Measures, in one script:
  (a) the wall time of ``labctl run --jobs N scenarios/ --allow-host-ipc``, and from the
      engine's event stream (labels io.labctl.*) every container that run created, with its
      create -> destroy interval, per scenario;
  (b) the bare docker-SDK create + start + wait + remove time of the same number of
      containers of the same image, one after another (a command that exits at once:
      the pure lifecycle cost, nothing of labctl);
  (c) orchestration overhead per scenario = its duration in labctl's JSON report minus
      the time during which at least one of its containers existed (the union of their
      create -> destroy intervals): what labctl spends outside any container's life
      (loading, volumes, waits between containers, teardown of volumes, checks after);
  (d) warm ``labctl build`` (median of 5) and, with --cold, a cold build (temporary,
      empty build and zig caches: compiles musl and the workload; docker build without
      its layer cache, under a throwaway tag removed afterwards).

Prints a JSON document on stdout (``--out`` also writes it). Objects created in (b)
are labelled through ``labctl.runtime.labels.labels_for`` and removed in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402  (the SDK, directly: this measures the bare engine)
import docker.errors  # noqa: E402

from labctl.runtime.labels import RUN_ID, labels_for  # noqa: E402

LABCTL = [sys.executable, "-m", "labctl"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by the intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def run_suite(jobs: int, client: docker.DockerClient) -> dict:
    """(a) + (c): time ``labctl run`` and collect its containers' lifecycles from events."""
    # follow the event stream live: a `since` query replays only the daemon's last 256 events
    stream = client.events(decode=True, filters={"type": "container", "label": "io.labctl.managed=true"})
    collected: list[dict] = []
    follower = threading.Thread(target=lambda: collected.extend(stream), daemon=True)
    follower.start()
    t0 = time.monotonic()
    proc = subprocess.Popen([*LABCTL, "run", "--jobs", str(jobs), "--allow-host-ipc", "--format", "json", "scenarios/"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    stdout, stderr = proc.communicate(timeout=900)
    wall = time.monotonic() - t0
    time.sleep(1.0)  # measurement script, not synchronisation: let the last destroy events arrive
    stream.close()
    follower.join(timeout=5)
    try:
        report = json.loads(stdout)
    except ValueError:
        raise SystemExit(f"labctl run printed no JSON (exit {proc.returncode}):\n{stderr[-2000:]}")
    created: dict[str, tuple[str, float]] = {}
    lifetimes: dict[str, list[tuple[float, float]]] = {}
    started: dict[str, float] = {}
    running: dict[str, list[tuple[float, float]]] = {}  # start -> die: the workload itself
    for ev in list(collected):
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        if attrs.get("io.labctl.pid") != str(proc.pid):
            continue  # another labctl (a teammate's tests) on the same engine
        cid, t, action = ev.get("id", ""), ev.get("timeNano", 0) / 1e9, ev.get("Action") or ev.get("status")
        if action == "create":
            created[cid] = (attrs.get("io.labctl.scenario", "?"), t)
        elif action == "start":
            started[cid] = t
        elif action == "die" and cid in started and cid in created:
            running.setdefault(created[cid][0], []).append((started.pop(cid), t))
        elif action == "destroy" and cid in created:
            scen, t_create = created.pop(cid)
            lifetimes.setdefault(scen, []).append((t_create, t))
    per_scenario = []
    for s in report.get("scenarios", []):
        spans = lifetimes.get(s["name"], [])
        covered = union_length(spans)
        ran = union_length(running.get(s["name"], []))
        per_scenario.append({
            "name": s["name"], "status": s["status"], "duration_s": round(s["duration_s"], 3),
            "containers": len(spans), "containers_alive_s": round(covered, 3),
            # while at least one container's process ran (start -> die): the scenario's own work
            "containers_running_s": round(ran, 3),
            "overhead_s": round(max(0.0, s["duration_s"] - covered), 3) if spans else None,
        })
    return {"exit": proc.returncode, "wall_s": round(wall, 3), "summary": report.get("summary"),
            "scenarios": per_scenario, "containers": sum(x["containers"] for x in per_scenario),
            "sum_duration_s": round(sum(x["duration_s"] for x in per_scenario), 3),
            "sum_alive_s": round(sum(x["containers_alive_s"] for x in per_scenario), 3),
            "sum_running_s": round(sum(x["containers_running_s"] for x in per_scenario), 3),
            "sum_overhead_s": round(sum(x["overhead_s"] or 0.0 for x in per_scenario), 3)}


def bare_lifecycles(client: docker.DockerClient, image: str, count: int) -> dict:
    """(b): ``count`` containers created, started, waited for and removed one after
    another with the bare SDK, hardened like labctl's, running a command that exits."""
    run_id = str(uuid.uuid4())
    times: list[float] = []
    try:
        for i in range(count):
            t0 = time.monotonic()
            c = client.containers.create(
                image, ["probe", "--ns"], name=f"labctl-{run_id[:8]}-bare-{i}",
                labels=labels_for(run_id, "suite-speed", f"bare-{i}"), network_mode="none", read_only=True,
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"], pids_limit=64, mem_limit="256m",
                user="65534:65534", detach=True)
            try:
                c.start()
                c.wait(timeout=30)
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                # a concurrent `labctl clean` (a teammate's tests on a shared engine) took it
                continue
            times.append(time.monotonic() - t0)
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{RUN_ID}={run_id}"}):
            try:
                c.remove(force=True)
            except docker.errors.APIError:
                pass  # already being removed by the engine
    # scaled to `count` when a concurrent clean removed some of ours mid-lifecycle
    total = sum(times) * count / len(times) if times else 0.0
    return {"containers": count, "measured": len(times), "sum_s": round(total, 3),
            "median_per_container_s": round(statistics.median(times), 3) if times else None}


# The cold build runs in a child interpreter (as the CLI would: interpreter start
# included) with every cache empty and under a throwaway image repository: it never
# replaces nor prunes the developer's labctl/shmlab images and leaves their caches alone.
COLD_REPO = "labctl/shmlab-coldbench"
_COLD_CHILD = '''
import sys
from labctl.images import build
from labctl.runtime import Engine

class ColdEngine:
    # docker build without its layer cache, and no prune_images: the developer's images stay
    def __init__(self, engine):
        self.engine = engine
    def architecture(self):
        return self.engine.architecture()
    def image_exists(self, ref):
        return self.engine.image_exists(ref)
    def build_image(self, context, tag, labels):
        return self.engine.build_image(context, tag, labels, nocache=True)
    def tag_image(self, ref, repo, tag):
        self.engine.tag_image(ref, repo, tag)

build.REPO = sys.argv[1]
print(build.ensure_image(ColdEngine(Engine.connect()), force=True).image)
'''


def _dir_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def cold_build(client: docker.DockerClient) -> dict:
    """A build with empty labctl and zig caches (zig builds musl's libc first) and no
    docker layer cache, into ``COLD_REPO``. The caches are a temporary directory and the
    image is removed afterwards; ``labctl/shmlab:latest`` is never touched."""
    cache = Path(tempfile.mkdtemp(prefix="labctl-cold-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache),
           "ZIG_GLOBAL_CACHE_DIR": str(cache / "zig"), "ZIG_LOCAL_CACHE_DIR": str(cache / "zig-local")}
    image = None
    try:
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", _COLD_CHILD, COLD_REPO], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit(f"cold build failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        image = proc.stdout.strip().splitlines()[-1]
        return {"cold_s": round(seconds, 3), "cold_zig_cache_mb": _dir_mb(cache / "zig"),
                "cold_what": "empty XDG_CACHE_HOME and zig caches (musl built too), docker build without layer cache"}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        for ref in ([image] if image else []) + [f"{COLD_REPO}:latest"]:
            try:
                client.images.remove(ref, noprune=False)
            except docker.errors.ImageNotFound:
                pass


def bare_parallel(client: docker.DockerClient, image: str, count: int, jobs: int) -> dict:
    """The same bare lifecycles as ``bare_lifecycles`` but ``jobs`` at a time (threads):
    how much the engine itself gains from concurrency on this machine."""
    share = [count // jobs + (1 if i < count % jobs else 0) for i in range(jobs)]
    results: list[dict] = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda n=n: results.append(bare_lifecycles(client, image, n))) for n in share]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"containers": count, "jobs": jobs, "wall_s": round(time.monotonic() - t0, 3)}


def build_times(client: docker.DockerClient, cold: bool) -> dict:
    """(d): warm build (median of 5 no-op builds) and optionally a cold one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    warm = []
    for _ in range(5):
        t0 = time.monotonic()
        subprocess.run([*LABCTL, "-q", "build"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=900)
        warm.append(time.monotonic() - t0)
    out: dict = {"warm_s_median": round(statistics.median(warm), 3), "warm_s": [round(w, 3) for w in warm]}
    if cold:
        out.update(cold_build(client))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Scenarios mostly wait on their own workloads, so twice the cores keeps the engine busy.
    ap.add_argument("--jobs", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--cold", action="store_true", help="also time a cold build (~1 min: builds musl)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    client = docker.from_env(timeout=120)
    _say("timing warm (and cold) labctl build...")
    builds = build_times(client, args.cold)
    image = subprocess.run([*LABCTL, "-q", "build"], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()
    _say(f"labctl run --jobs {args.jobs} scenarios/ --allow-host-ipc ...")
    suite = run_suite(args.jobs, client)
    _say(f"bare SDK lifecycle of {suite['containers']} containers, one after another...")
    bare = bare_lifecycles(client, image, suite["containers"])
    _say(f"the same, {args.jobs} at a time...")
    bare["parallel"] = bare_parallel(client, image, suite["containers"], args.jobs)
    overheads = [s["overhead_s"] for s in suite["scenarios"] if s["overhead_s"] is not None]
    doc = {
        "machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
        "command": f"labctl run --jobs {args.jobs} scenarios/ --allow-host-ipc",
        "build": builds,
        "suite": suite,
        "bare_sdk": bare,
        "targets": {
            "wall_le_bare_sum": {"wall_s": suite["wall_s"], "bare_sum_s": bare["sum_s"],
                                 "met": suite["wall_s"] <= bare["sum_s"]},
            "overhead_per_scenario_lt_200ms": {
                "median_s": round(statistics.median(overheads), 3) if overheads else None,
                "max_s": max(overheads) if overheads else None,
                "met": bool(overheads) and max(overheads) < 0.2},
            "warm_build_lt_2s": {"median_s": builds["warm_s_median"], "met": builds["warm_s_median"] < 2.0},
        },
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
