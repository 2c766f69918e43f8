"""Reliability on the real engine: hardening, interrupts, SIGKILL, concurrent runs, faults.

Every test drives ``labctl`` as a subprocess and synchronises on what it can see: the
engine's containers carrying the subprocess's ``io.labctl.pid`` label, the lines on its
stderr, the per-run temp dir of a "gate" scenario (its waiter exits when the test
creates ``open`` there). No fixed sleeps: every wait polls with a deadline.

Figures for docs/reliability.md (interrupt points, cleanup times) are appended to the
file named by ``LABCTL_RELIABILITY_FIGURES`` when it is set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from tests.helpers import wait_until

# SIGKILLed and --keep runs leave objects whose owner is gone, and `clean --stale` takes them
pytestmark = pytest.mark.alone("killed and kept runs leave objects with no live owner")

ROOT = Path(__file__).resolve().parents[2]
REL = ROOT / "tests" / "data" / "reliability"
CLEANUP_BOUND_S = 10.0  # the bound: every object of the run gone within 10 s





def _figure(record: dict) -> None:
    path = os.environ.get("LABCTL_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


@dataclass
class Labctl:
    """A running ``python -m labctl ...`` with its output in files and its own TMPDIR."""

    proc: subprocess.Popen
    tmp: Path
    out: Path
    err: Path
    client: docker.DockerClient
    signalled_at: float = 0.0
    objects_seen: set[str] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def containers(self, running: bool = False) -> list:
        filters: dict = {"label": [f"io.labctl.pid={self.pid}"]}
        if running:
            filters["status"] = "running"
        return self.client.containers.list(all=not running, filters=filters, ignore_removed=True)

    def objects(self) -> list[str]:
        """Names of every container and volume this labctl process created and still exist."""
        filters = {"label": [f"io.labctl.pid={self.pid}"]}
        names = [c.name for c in self.client.containers.list(all=True, filters=filters, ignore_removed=True)]
        names += [v.name for v in self.client.volumes.list(filters=filters)]
        return names

    def running_roles(self) -> set[str]:
        return {c.labels.get("io.labctl.role", "") for c in self.containers(running=True)}

    def wait_roles(self, *roles: str, count: int = 1, timeout: float = 60) -> None:
        """Until ``count`` running containers have each of ``roles`` (several runs of one
        scenario with --jobs: count them)."""
        def ok() -> bool:
            seen = [c.labels.get("io.labctl.role", "") for c in self.containers(running=True)]
            return all(seen.count(r) >= count for r in roles)

        assert wait_until(ok, timeout, pause=0.05), f"roles {roles} never ran; {self.stderr()}"

    def gates(self) -> list[Path]:
        return sorted(self.tmp.glob("labctl-*-gate-*"))

    def open_gates(self) -> None:
        """Let every waiter of this run finish: a zero-filled file the size of a page."""
        assert wait_until(lambda: bool(self.gates()), 30), "no gate directory appeared"
        for g in self.gates():
            part = g / "open.part"
            part.write_bytes(b"\0" * 4096)
            part.chmod(0o644)
            part.rename(g / "open")  # atomic: the waiter never maps a half-written file

    def send(self, sig: int) -> None:
        self.signalled_at = time.monotonic()
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"labctl did not exit within {timeout}s; {self.stderr()}") from None

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


@pytest.fixture
def start(tmp_path: Path, docker_client: docker.DockerClient, shmlab_image: str) -> Iterator:
    """Start labctl subprocesses; any still running at the end is killed and its objects removed."""
    started: list[Labctl] = []

    def _start(*args: str, name: str = "run") -> Labctl:
        tmp = tmp_path / name
        tmp.mkdir()
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen([sys.executable, "-m", "labctl", *args], cwd=ROOT, stdout=fo, stderr=fe,
                                    stdin=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp)})
        run = Labctl(proc, tmp, out, err, docker_client)
        started.append(run)
        return run

    yield _start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        for c in run.containers():
            c.remove(force=True, v=True)
        for v in docker_client.volumes.list(filters={"label": [f"io.labctl.pid={run.pid}"]}):
            v.remove(force=True)


def assert_cleaned_after_signal(run: Labctl, code: int, point: str, sig: int) -> None:
    """Exit code 128+signal, no traceback, every object of the run gone within the bound."""
    rc = run.wait(CLEANUP_BOUND_S + 20)
    gone = wait_until(lambda: not run.objects(), CLEANUP_BOUND_S, pause=0.05)
    elapsed = time.monotonic() - run.signalled_at
    _figure({"kind": "interrupt", "point": point, "signal": signal.Signals(sig).name, "exit": rc,
             "clean_s": round(elapsed, 3)})
    assert rc == code, run.stderr()
    assert gone and elapsed <= CLEANUP_BOUND_S, f"left after {elapsed:.1f}s: {run.objects()}"
    assert "Traceback" not in run.stderr()
    assert not run.gates(), "the per-run temp dir was not removed"


# ==== hardened by default ====


def test_lab_containers_are_hardened_by_default(start) -> None:
    run = start("run", "--keep", str(REL / "many.yaml"))
    assert run.wait() == 0, run.stderr()
    kept = run.containers()
    assert len(kept) == 12
    run_id = kept[0].labels["io.labctl.run-id"]
    try:
        c = kept[0]
        c.reload()
        host, cfg = c.attrs["HostConfig"], c.attrs["Config"]
        assert c.attrs["State"]["Running"], "--keep should leave the holders running"
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert "no-new-privileges:true" in (host.get("SecurityOpt") or [])
        assert host["Privileged"] is False
        assert host["PidsLimit"] and host["PidsLimit"] > 0
        assert host["Memory"] and host["Memory"] > 0
        assert cfg["User"] == "65534:65534"
        # What the process really runs as, from its own start event.
        start_event = json.loads(c.logs(stdout=True, stderr=False).decode().splitlines()[0])
        assert start_event["event"] == "start" and start_event["uid"] == 65534 and start_event["gid"] == 65534
        # Kept on purpose, so not a dead run's debris: `clean --stale` leaves them.
        stale = subprocess.run([sys.executable, "-m", "labctl", "clean", "--stale"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert stale.returncode == 0 and len(run.containers()) == 12, stale.stderr
    finally:
        proc = subprocess.run([sys.executable, "-m", "labctl", "clean", "--run", run_id], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not run.objects()


# ==== interrupts ====


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_while_starting_containers(start, sig: int) -> None:
    # `late` starts only after `waiter` exited: with the waiter running and the gate
    # closed, labctl is inside its start phase.
    run = start("run", str(REL / "gate-start.yaml"))
    run.wait_roles("waiter")
    assert "late" not in run.running_roles()
    run.send(sig)
    assert_cleaned_after_signal(run, 128 + sig, "starting containers", sig)
    assert f"labctl: {signal.Signals(sig).name}: stopping" in run.stderr()


def test_sigterm_while_a_check_waits(start) -> None:
    run = start("run", str(REL / "gate.yaml"))
    run.wait_roles("writer", "waiter")  # the waiter starts last; the checks wait for it
    run.send(signal.SIGTERM)
    assert_cleaned_after_signal(run, 143, "check waiting", signal.SIGTERM)


def test_sigint_during_teardown(start) -> None:
    # rel-many-gated holds twelve containers and a waiter until the test opens the gate; its
    # checks then pass at once and teardown removes thirteen containers. The signal goes
    # when the first of them disappears.
    run = start("run", str(REL / "many-gated.yaml"))
    run.wait_roles("waiter", *(f"h{i}" for i in range(1, 13)))
    run.open_gates()
    assert wait_until(lambda: len(run.containers()) < 13 or run.proc.poll() is not None, 30, pause=0.01)
    if run.proc.poll() is not None:
        pytest.fail("teardown finished before the signal could be sent; the sync point was missed")
    run.send(signal.SIGINT)
    assert_cleaned_after_signal(run, 130, "teardown", signal.SIGINT)


def test_sigint_with_parallel_jobs_stops_every_worker(start) -> None:
    # Two scenarios in two worker threads, both blocked (one starting, one checking);
    # the signal reaches only the main thread.
    run = start("run", "--jobs", "2", str(REL / "gate.yaml"), str(REL / "gate-start.yaml"))
    run.wait_roles("waiter", count=2)
    run.send(signal.SIGINT)
    assert_cleaned_after_signal(run, 130, "two workers (--jobs 2)", signal.SIGINT)


def test_sigterm_with_parallel_jobs(start) -> None:
    run = start("run", "--jobs", "2", str(REL / "many-wait.yaml"), str(REL / "gate.yaml"))
    run.wait_roles("h12", "waiter")
    run.send(signal.SIGTERM)
    assert_cleaned_after_signal(run, 143, "two workers (--jobs 2)", signal.SIGTERM)


def test_second_sigint_forces_exit_and_clean_stale_removes_the_rest(start) -> None:
    run = start("run", str(REL / "many-wait.yaml"))
    run.wait_roles(*(f"h{i}" for i in range(1, 13)))
    run.send(signal.SIGINT)
    # The handler says so at once; the cleanup of twelve containers is then under way.
    assert wait_until(lambda: "interrupt again" in run.stderr() or run.proc.poll() is not None, 10, pause=0.005)
    run.send(signal.SIGINT)
    rc = run.wait(10)
    forced_s = time.monotonic() - run.signalled_at
    assert rc == 130, run.stderr()
    assert "second interrupt, exiting now" in run.stderr()
    assert forced_s < 2.0  # an os._exit: no cleanup after the second signal
    left = len(run.objects())
    proc = subprocess.run([sys.executable, "-m", "labctl", "clean", "--stale"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not run.objects()
    _figure({"kind": "forced", "exit_s": round(forced_s, 3), "left_for_clean_stale": left})


# ==== SIGKILL and concurrent runs ====


def test_concurrent_runs_pass_and_a_killed_runs_objects_go_and_only_those(start, docker_client) -> None:
    a = start("run", "--format", "json", str(REL / "gate.yaml"), name="a")
    b = start("run", "--format", "json", str(REL / "gate.yaml"), name="b")
    k = start("run", str(REL / "gate.yaml"), name="killed")
    for r in (a, b, k):
        r.wait_roles("writer", "waiter")
    # Three runs of the same scenario, same SysV key, at once: each sees only its own.
    ids = {r.pid: {c.labels["io.labctl.run-id"] for c in r.containers()} for r in (a, b, k)}
    assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == 3
    live_before = {c.id for r in (a, b) for c in r.containers()}

    k.proc.kill()
    k.proc.wait()
    assert k.objects(), "SIGKILL leaves the run's objects (nothing could remove them)"
    # The next `labctl run` removes the dead run's objects, and only those.
    nxt = subprocess.run([sys.executable, "-m", "labctl", "run", str(ROOT / "tests/data/failing/passes.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert nxt.returncode == 0, nxt.stderr
    assert "removed stale container" in nxt.stderr
    assert not k.objects()
    assert {c.id for r in (a, b) for c in r.containers()} >= live_before  # the live runs: untouched

    for r in (a, b):
        r.open_gates()
    for r in (a, b):
        assert r.wait() == 0, r.stdout() + r.stderr()
        report = json.loads(r.stdout())
        assert report["summary"]["passed"] == 1
        assert not r.objects()
    for g in k.gates():  # a SIGKILLed labctl cannot remove its host temp dir
        g.rmdir()
    _figure({"kind": "concurrent", "runs": 3, "killed": 1})


# ==== faults during a run ====


def test_writer_killed_mid_scenario_fails_with_the_reason(start) -> None:
    run = start("run", "--format", "json", str(REL / "victim.yaml"))
    run.wait_roles("writer")
    [writer] = run.containers(running=True)
    writer.kill()
    assert run.wait() == 1, run.stderr()
    [s] = json.loads(run.stdout())["scenarios"]
    assert s["status"] == "failed"
    assert "writer: killed by SIGKILL (exit 137)" in s["checks"][0]["message"]
    assert not run.objects() and "Traceback" not in run.stderr()


def test_container_removed_behind_labctls_back(start) -> None:
    run = start("run", "--format", "json", str(REL / "victim.yaml"))
    run.wait_roles("writer")
    [writer] = run.containers(running=True)
    writer.remove(force=True)
    assert run.wait() == 1, run.stderr()
    [s] = json.loads(run.stdout())["scenarios"]
    assert s["status"] in ("failed", "error")
    text = json.dumps(s)
    assert "container 'writer'" in text and "removed behind labctl's back" in text
    assert "teardown" not in s.get("message", "")  # teardown had nothing left to trip on
    assert not run.objects() and "Traceback" not in run.stderr()


def test_missing_image_is_a_clear_error_and_nothing_is_pulled(start, tmp_path: Path) -> None:
    f = tmp_path / "missing-image.yaml"
    f.write_text("version: 1\nname: missing-image\ndescription: d\ncontainers:\n  app:\n"
                 "    image: labctl/no-such-image:missing\n    command: [x]\n"
                 "checks:\n  - exit: {container: app, code: 0}\n")
    run = start("run", "--format", "json", str(f))
    assert run.wait(60) == 1, run.stderr()
    [s] = json.loads(run.stdout())["scenarios"]
    assert "image labctl/no-such-image:missing not found" in s["checks"][0]["message"]
    assert s["duration_s"] < 10  # refused at create: no pull attempt, no retry loop
    assert not run.objects() and "Traceback" not in run.stderr()


@pytest.mark.parametrize("address", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"])
def test_unreachable_engine_exits_3_naming_the_address(address: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", str(ROOT / "tests/data/failing/passes.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKER_HOST": address})
    assert proc.returncode == 3, proc.stderr
    assert address in proc.stderr and "Traceback" not in proc.stderr
