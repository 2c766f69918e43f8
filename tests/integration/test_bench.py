"""labctl bench on the real engine: a tiny run has the documented JSON fields for both
placements, bad options start nothing, and Ctrl-C leaves nothing behind (the leak guard
checks every test). No test asserts a time."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# the host pairs' shared memory and sockets live on the host: no other test's window meanwhile
pytestmark = pytest.mark.alone("the bench's host pairs make IPC objects on the host")

REPO_ROOT = Path(__file__).resolve().parents[2]

CONTRACT_FIELDS = {"mechanism", "placement", "size", "rtt_ns_median", "rtt_ns_p99", "msgs_per_s", "bytes_per_s"}
MECHS = ("sysv-shm-spin", "unix-socket", "tcp-bridge")  # an IPC namespace, a volume, a network


def labctl(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_tiny_bench_reports_every_pair_in_json(shmlab_image: str) -> None:
    proc = labctl("bench", "--format", "json", "--mechanisms", ",".join(MECHS), "--sizes", "64",
                  "--iterations", "50", "--timeout", "10", "--rounds", "2", timeout=120.0)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc["machine"]) >= {"cpu", "kernel", "cores"}
    assert isinstance(doc["machine"]["cores"], int) and doc["machine"]["kernel"]
    assert isinstance(doc["pinned"], bool)
    pairs = {(r["mechanism"], r["placement"]) for r in doc["results"]}
    assert pairs == {(m, p) for m in MECHS for p in ("host", "container")} | {("memcpy", "host")}
    for r in doc["results"]:
        assert CONTRACT_FIELDS <= set(r), r
        assert r["size"] == (1048576 if r["mechanism"] == "memcpy" else 64)
        assert all(isinstance(r[k], int) and r[k] > 0 for k in ("rtt_ns_median", "rtt_ns_p99", "msgs_per_s", "bytes_per_s"))
        assert r["rtt_ns_p99"] >= r["rtt_ns_median"]
    assert doc["errors"] == []
    assert "[1/12]" in proc.stderr  # progress on stderr, data alone on stdout
    # paired rounds: every round kept, one paired row per mechanism with both placements
    assert len(doc["rounds"]) == 2 * 2 * len(MECHS)
    assert {(p["mechanism"], p["size"]) for p in doc["paired"]} == {(m, 64) for m in MECHS}
    for p in doc["paired"]:
        assert p["rounds"] == 2 and len(p["ratios"]) == 2
        assert p["ratio_min"] <= p["ratio_q1"] <= p["ratio_median"] <= p["ratio_q3"] <= p["ratio_max"]
        assert p["verdict"] == "too few rounds"  # two rounds give no verdict, never a clean "stable"
    for r in doc["rounds"]:
        assert r["batch"] >= 1 and r["clock_tick_ns"] > 0  # the client measured its clock's step
    assert set(doc["conditions"]) == {"start", "end", "steal_pct"}



def test_interrupt_removes_everything(shmlab_image: str) -> None:
    # long enough to be interrupted while a container pair runs
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "bench", "--placements", "container",
                             "--mechanisms", "sysv-shm-futex,mmap-disk", "--sizes", "64", "--iterations", "2000000",
                             "--timeout", "30", "--rounds", "1"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        sel = selectors.DefaultSelector()
        assert proc.stderr is not None
        sel.register(proc.stderr, selectors.EVENT_READ)
        seen = ""
        deadline = time.monotonic() + 30
        while "[1/2]" not in seen and time.monotonic() < deadline:
            if sel.select(timeout=1.0):
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
        assert "[1/2]" in seen, seen
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, seen + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
