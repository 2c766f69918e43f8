"""``labctl inspect`` on stacks labctl did not make: plain ``docker compose up -d`` of the
root demo and of the fixtures in tests/data/inspect, and a Podman pod from ``podman kube
play`` of a ``labctl export k8s`` output. Each test compares what inspect reports (JSON)
with what the workloads printed (their ``attached`` lines, ipcns, sizes), and ends with
the stack torn down by its own project/pod name; the leak guard then checks that no
labelled object (inspect's probes included) is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import pid_alive, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.compose]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "inspect"
CMD_TIMEOUT_S = 120.0  # one compose/podman/labctl command
READY_S = 60.0  # a workload's first lines
ATTACHED = re.compile(r'"event":"attached".*?"shmid":(\d+),"size":(\d+)|attached key=(\d+) shmid=(\d+) size=(\d+)')
IPCNS = re.compile(r"ipcns[=\":]+(ipc:\[\d+\])")


def sh(*args: str, env: dict | None = None, check: bool = True, timeout: float = CMD_TIMEOUT_S) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}", pytrace=False)
    return proc.stdout + proc.stderr


def labctl(*args: str, code: int = 0) -> str:
    """``labctl ARGS`` as a user runs it; fails unless it exits ``code``; its stdout."""
    proc = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                          timeout=CMD_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == code, f"labctl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def inspect_json(*args: str) -> dict:
    return json.loads(labctl("inspect", "--format", "json", *args))


class Stack:
    """One ``docker compose -p NAME`` project of ours: ``up``, logs by service, ``down -v``."""

    def __init__(self, image: str, *files: Path) -> None:
        self.project = f"labctltest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.files = [a for f in files for a in ("-f", str(f))]
        self.env = {"SHMLAB_IMAGE": image}

    def compose(self, *args: str, check: bool = True) -> str:
        return sh("docker", "compose", "-p", self.project, *self.files, *args, env=self.env, check=check)

    def name(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def logs(self, service: str) -> str:
        return sh("docker", "logs", self.name(service), check=False)

    def wait_for(self, service: str, pattern: str) -> str:
        if not wait_until(lambda: re.search(pattern, self.logs(service)) is not None, READY_S):
            pytest.fail(f"{service} never printed /{pattern}/; output:\n{self.logs(service)[-2000:]}")
        return self.logs(service)


@pytest.fixture
def stacks(shmlab_image: str) -> Iterator[list[Stack]]:
    """Stacks a test brings up; each is taken down (``down -v``) whatever happened."""
    made: list[Stack] = []
    yield made
    for s in made:
        s.compose("down", "-v", "--remove-orphans", "--timeout", "3", check=False)


def up(stacks: list[Stack], image: str, *files: Path) -> Stack:
    s = Stack(image, *files)
    stacks.append(s)  # before up: a failed up is still taken down
    s.compose("up", "-d")
    return s


def by_service(report: dict) -> dict[str, dict]:
    """service name -> its namespace in the report."""
    return {c["service"]: ns for ns in report["namespaces"] for c in ns["containers"] if c["service"]}


def attached(output: str) -> tuple[int, int]:
    """(shmid, size) from a workload's ``attached`` line (JSON or --human)."""
    m = ATTACHED.search(output)
    assert m, f"no attached line in:\n{output}"
    if m.group(1) is not None:
        return int(m.group(1)), int(m.group(2))
    return int(m.group(4)), int(m.group(5))


def no_probe_left() -> None:
    """No inspect probe is left whose labctl has exited (a probe of a live labctl belongs to
    an inspect still running: another test's, when the suite runs on several workers)."""
    rows = sh("docker", "ps", "-a", "--filter", "label=io.labctl.scenario=inspect",
              "--format", '{{.ID}} {{.Label "io.labctl.pid"}}', check=False).split("\n")
    left = [row.split()[0] for row in rows if row.strip() and not owner_alive(row.split()[1:])]
    assert not left, f"inspect probes left behind: {left}"


def owner_alive(pid: list[str]) -> bool:
    """Whether the owner pid label's value (a one-word list, or none) names a live process."""
    return bool(pid) and pid[0].isdigit() and pid_alive(int(pid[0]))


# ==== Docker: the root compose demo ====


def test_demo_one_namespace_with_writer_reader_and_segment_1234(stacks: list[Stack], shmlab_image: str) -> None:
    # the root docker-compose.yml, its reader made to read for minutes instead of 4 s
    s = up(stacks, shmlab_image, ROOT / "docker-compose.yml", DATA / "demo-long-reader.yml")
    writer_out = s.wait_for("writer", r"attached key=1234")
    s.wait_for("reader", r"reader: read count=\d+ ip=127\.0\.0\.1")
    shmid, size = attached(writer_out)
    report = inspect_json("--project", s.project)
    assert len(report["namespaces"]) == 1, report
    ns = report["namespaces"][0]
    assert {c["service"] for c in ns["containers"]} == {"writer", "reader"}
    assert ns["kind"] == "shareable" and ns["donor"] == s.name("writer") and ns["inspected"], ns
    assert ns["ipcns"] == IPCNS.search(writer_out).group(1), "not the namespace the writer printed"
    seg = {x["key"]: x for x in ns["segments"]}[1234]
    assert (seg["key_hex"], seg["shmid"], seg["size"], seg["nattch"]) == ("0x000004d2", shmid, size, 2)
    assert size == 68 and seg["cpid_container"] == s.name("writer")
    assert ns["devshm"]["size"] == 64 * 1024 * 1024 and ns["devshm"]["files"] == []
    text = labctl("inspect", "--project", s.project)
    assert "0x000004d2" in text and s.name("reader") in text and "/dev/shm: 64.0 MiB" in text
    no_probe_left()


# ==== Docker: three services in two IPC groups ====


def test_two_groups_and_a_private_namespace_only_with_allow_privileged(stacks: list[Stack],
                                                                         shmlab_image: str) -> None:
    s = up(stacks, shmlab_image, DATA / "two-groups.yml")
    sysv_out = s.wait_for("sysv", r'"event":"attached"')
    s.wait_for("posix", r'"event":"mapped"')
    solo_out = s.wait_for("solo", r'"event":"attached"')

    report = inspect_json("--project", s.project)
    ns = by_service(report)
    assert ns["sysv"] is ns["posix"] and ns["sysv"] is not ns["solo"], "two IPC groups expected"
    assert len(report["namespaces"]) == 2
    shared = ns["sysv"]
    assert shared["inspected"] and shared["ipcns"] == IPCNS.search(sysv_out).group(1)
    seg = {x["key"]: x for x in shared["segments"]}[1234]
    assert (seg["shmid"], seg["size"]) == attached(sysv_out) and seg["nattch"] == 1
    assert shared["devshm"]["files"] == [{"name": "inspect-demo", "size": 4096}]
    assert shared["devshm"]["size"] == 16 * 1024 * 1024 and shared["devshm"]["used"] >= 4096
    # the private one: listed, not inspected, with the reason and the flag
    solo = ns["solo"]
    assert not solo["inspected"] and solo["segments"] is None
    assert "private" in solo["skipped"] and "--allow-privileged" in solo["skipped"]
    assert [x["containers"] for x in report["not_inspected"]] == [[s.name("solo")]]
    assert "NOT INSPECTED" in labctl("inspect", "--project", s.project)

    report = inspect_json("--project", s.project, "--allow-privileged")
    solo = by_service(report)["solo"]
    assert solo["inspected"] and "setns" in solo["via"], solo
    assert solo["ipcns"] == IPCNS.search(solo_out).group(1)
    seg = {x["key"]: x for x in solo["segments"]}[0x99]
    assert (seg["shmid"], seg["size"], seg["nattch"]) == (*attached(solo_out), 1)
    assert seg["cpid_container"] == s.name("solo")  # a host pid, named
    assert solo["devshm"]["size"] == 32 * 1024 * 1024  # its own /dev/shm, through /proc/PID/root
    assert report["not_inspected"] == []
    no_probe_left()


def test_watch_refreshes_until_ctrl_c_then_exits_130_with_probes_removed(stacks: list[Stack],
                                                                          shmlab_image: str) -> None:
    s = up(stacks, shmlab_image, DATA / "two-groups.yml")
    s.wait_for("sysv", r'"event":"attached"')
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "inspect", "--project", s.project, "--watch", "1",
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # two refreshes, one document each
        assert all(json.loads(line)["namespaces"] for line in lines), lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    no_probe_left()


# ==== Docker: pitfalls seen live ====


def test_leaked_segment_full_devshm_and_shm_near_limit_warn(stacks: list[Stack], shmlab_image: str) -> None:
    s = up(stacks, shmlab_image, DATA / "leaks.yml")
    leaker_out = s.wait_for("leaker", r'"event":"holding"')
    s.wait_for("filler", r'"event":"holding"')
    shmid, size = attached(leaker_out)
    sh("docker", "kill", "--signal", "KILL", s.name("leaker"))
    assert wait_until(lambda: "exited" in sh("docker", "inspect", "-f", "{{.State.Status}}", s.name("leaker")),
                      30.0)

    report = inspect_json("--project", s.project)
    ns = by_service(report)["holder"]
    seg = {x["shmid"]: x for x in ns["segments"]}[shmid]
    assert (seg["key"], seg["size"], seg["nattch"]) == (0, size, 0)
    [fill] = ns["devshm"]["files"]
    assert fill["name"].startswith("inspect-fill.") and fill["size"] == 7 * 1024 * 1024
    warned = {w["pitfall"]: w for w in report["warnings"]}
    assert set(warned) == {"orphan-segment", "devshm-full", "shm-near-memory-limit"}, report["warnings"]
    assert "sigkill-leaks-private-segments" in warned["orphan-segment"]["scenarios"]
    assert warned["devshm-full"]["scenarios"] == ["posix-beyond-shm-size", "devshm-crashloop-fills"]
    assert warned["shm-near-memory-limit"]["container"] == s.name("filler")
    assert warned["shm-near-memory-limit"]["scenarios"] == ["shm-oom-killed-writer"]
    filler = next(c for c in ns["containers"] if c["service"] == "filler")
    assert filler["memory"]["shmem"] >= 7 * 1024 * 1024 and filler["memory"]["limit"] == 8 * 1024 * 1024
    text = labctl("inspect", "--project", s.project)
    assert "WARNING orphan-segment" in text and "scenarios/sigkill-leaks-private-segments.yaml" in text
    no_probe_left()


def test_a_restarted_donor_leaves_its_joiners_behind_with_a_warning(stacks: list[Stack], shmlab_image: str) -> None:
    s = up(stacks, shmlab_image, DATA / "two-groups.yml")
    s.wait_for("posix", r'"event":"mapped"')
    sh("docker", "restart", "--time", "3", s.name("sysv"))
    report = inspect_json("--project", s.project)
    ns = by_service(report)
    assert ns["sysv"] is not ns["posix"], "the restarted donor is in a new namespace"
    assert ns["posix"]["kind"] == "stale" and ns["posix"]["donor"] == s.name("sysv")
    assert ns["posix"]["devshm"]["files"] is None and "--allow-privileged" in ns["posix"]["devshm"]["note"]
    [w] = [w for w in report["warnings"] if w["pitfall"] == "donor-restarted"]
    assert w["scenarios"] == ["donor-restart-splits-sharing"] and s.name("posix") in w["message"]
    # the old namespace keeps the writer's segment; the donor's new one is empty
    assert [x["key"] for x in ns["posix"]["segments"]] == [1234] and ns["sysv"]["segments"] != []
    old = by_service(inspect_json("--project", s.project, "--allow-privileged"))["posix"]
    assert old["kind"] == "stale" and old["devshm"]["files"] == [{"name": "inspect-demo", "size": 4096}]


def test_an_unknown_container_is_a_usage_error() -> None:
    labctl("inspect", f"no-such-container-{uuid.uuid4().hex[:8]}", code=2)


# ==== Podman: a pod played from an export ====


@pytest.mark.podman
@pytest.mark.alone("podman kube play: a pod with no owner pid")
def test_podman_pod_from_kube_play_is_one_namespace(tmp_path: Path, shmlab_image: str) -> None:
    labctl("build", "--engine", "podman", "-q")  # the workload image in Podman's own store
    run_id = uuid.uuid4().hex
    pod = f"{run_id[:8]}-inspect-pod-writer"
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(labctl("export", "k8s", "--run-id", run_id, str(DATA / "pod-scenario.yaml")))
    try:
        sh("podman", "kube", "play", str(manifest))
        logs = lambda c: sh("podman", "logs", f"{pod}-{c}", check=False)  # noqa: E731
        assert wait_until(lambda: '"event":"read"' in logs("reader") and '"event":"mapped"' in logs("posix"),
                          READY_S), logs("reader")
        report = inspect_json("--engine", "podman", "--project", pod)
        assert len(report["namespaces"]) == 1, report
        ns = report["namespaces"][0]
        names = {c["name"] for c in ns["containers"]}
        assert {f"{pod}-writer", f"{pod}-reader", f"{pod}-posix"} <= names
        assert ns["kind"] == "pod" and ns["inspected"] and ns["via"] == f"pod {pod}"
        assert ns["ipcns"] == IPCNS.search(logs("writer")).group(1)
        shmid, size = attached(logs("writer"))
        seg = {x["key"]: x for x in ns["segments"]}[1234]
        assert (seg["shmid"], seg["size"], seg["nattch"]) == (shmid, 68, 2) and size == 68
        assert {"name": "inspect-pod", "size": 8192} in ns["devshm"]["files"]
        assert ns["devshm"]["size"] > 0
    finally:
        sh("podman", "pod", "rm", "--force", "--time", "2", pod, check=False)
    assert not sh("podman", "ps", "-aq", "--filter", "label=io.labctl.scenario=inspect", check=False).split()
