#!/usr/bin/env python3
"""labctl check speed: a 1,000-service Compose file and a 200-manifest stream.

Generates, in a temporary folder, a Compose file of 1,000 services (100 groups of a
shareable donor and 9 joiners, with anchors, interpolated values, tmpfs, volumes, users,
memory limits and sysctls) and a stream of 200 Kubernetes manifests (Deployments,
StatefulSets, CronJobs and Pods with emptyDirs, security contexts and sysctls, as
``helm template`` prints them), then times ``labctl check`` on both as a user runs it: a
new process (interpreter start included), ``--format json`` to /dev/null. Prints the median
and the spread of ``--repeat`` runs as JSON (``--out`` writes it too). The target is under
2 s on this 2-core machine; this is a measurement, not a test.

    python benchmarks/check_speed.py [--repeat 5] [--out benchmarks/results/check-speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compose_file(services: int) -> str:
    out = ["x-base: &base", "  image: ${IMAGE:-labctl/shmlab:latest}", "  read_only: true",
           "  cap_drop: [ALL]", "  mem_limit: ${MEM:-512m}", "services:"]
    for i in range(services):
        group, member = divmod(i, 10)
        name = f"s{group:03d}-{member}"
        out += [f"  {name}:", "    <<: *base"]
        if member == 0:
            out += ["    ipc: shareable", "    shm_size: ${SHM:-256m}", "    sysctls: [kernel.shm_rmid_forced=1]",
                    f"    command: [posix-writer, --name, /g{group}, --size, 96m]"]
        else:
            out += [f'    ipc: "service:s{group:03d}-0"', f"    command: [posix-reader, --name, /g{group}]",
                    f"    depends_on: [s{group:03d}-0]"]
        out += [f'    user: "{1000 + member % 2}:1000"', "    tmpfs: [/tmp]",
                f"    volumes: [\"data{group}:/data\", \"./cfg:/etc/app:ro\"]",
                "    environment:", f"      GROUP: \"{group}\"", "      STATE: /data/state"]
    out.append("volumes:")
    out += [f"  data{g}: {{}}" for g in range(services // 10)]
    return "\n".join(out) + "\n"


def manifests(count: int) -> str:
    docs = []
    kinds = ("Deployment", "StatefulSet", "CronJob", "Pod")
    for i in range(count):
        kind = kinds[i % len(kinds)]
        pod = f"""
      securityContext:
        runAsUser: 1000
        fsGroup: 1000
        sysctls: [{{name: kernel.shm_rmid_forced, value: "1"}}]
      containers:
      - name: app
        image: registry.example/app:{i}
        args: [--cache, /dev/shm/cache, --port, "80{i % 100:02d}"]
        env: [{{name: MODE, value: prod}}, {{name: N, value: "{i}"}}]
        resources: {{limits: {{memory: 512Mi, cpu: 500m}}, requests: {{memory: 256Mi}}}}
        volumeMounts: [{{name: dshm, mountPath: /dev/shm}}, {{name: data, mountPath: /data}}]
      - name: sidecar
        image: registry.example/proxy:1
        volumeMounts: [{{name: dshm, mountPath: /dev/shm}}]
      volumes:
      - {{name: dshm, emptyDir: {{medium: Memory, sizeLimit: 256Mi}}}}
      - {{name: data, emptyDir: {{}}}}"""
        if kind == "Pod":
            body = "spec:" + pod.replace("\n      ", "\n  ")
        elif kind == "CronJob":
            body = ("spec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:"
                    + pod.replace("\n      ", "\n          "))
        else:
            body = ("spec:\n  replicas: 3\n  selector: {matchLabels: {app: a%d}}\n  template:\n    metadata: {labels: {app: a%d}}\n"
                    "    spec:" % (i, i) + pod.replace("\n      ", "\n      "))
        api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "CronJob": "batch/v1", "Pod": "v1"}[kind]
        docs.append(f"# Source: chart/templates/t{i}.yaml\napiVersion: {api}\nkind: {kind}\n"
                    f"metadata:\n  name: w{i}\n  labels: {{app: a{i}}}\n{body}\n")
        docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  ports: [{{port: 80}}]\n")
    return "---\n".join(docs)


def timed(args: list[str], repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3), "runs": repeat}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--manifests", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-check-bench-") as tmp:
        cfile = Path(tmp) / "compose.yml"
        cfile.write_text(compose_file(a.services))
        (Path(tmp) / "cfg").mkdir()
        kfile = Path(tmp) / "manifests.yaml"
        kfile.write_text(manifests(a.manifests))
        labctl = [sys.executable, "-m", "labctl", "check", "--format", "json"]
        result = {
            "machine": {"cores": os.cpu_count(), "load_before": os.getloadavg()[0]},
            "inputs": {"compose_services": a.services, "compose_bytes": cfile.stat().st_size,
                       "manifests": a.manifests, "manifest_bytes": kfile.stat().st_size},
            "startup_only": timed([sys.executable, "-m", "labctl", "check", "--list-rules"], a.repeat),
            "compose": timed([*labctl, str(cfile)], a.repeat),
            "manifests": timed([*labctl, str(kfile)], a.repeat),
            "both": timed([*labctl, str(cfile), str(kfile)], a.repeat),
        }
        result["machine"]["load_after"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
