"""`labctl export k8s` manifests played for real with `podman kube play` (Podman implements
the Pod API: an infra container holds each pod's IPC namespace and /dev/shm).

Each test exports a scenario with its own run id (names and labels unique to the test),
plays it, waits for the reader to exit (``podman wait``, bounded), reads its output
(``podman logs``), then ``podman kube down`` and removes the claims' volumes, and asserts
that no pod, container or volume labelled with the run id remains. A missing podman FAILS
these tests, it never skips them.

Native sidecars (``--after sidecar``) are not played: Podman 4.3 treats every init
container as run-to-completion and ignores ``restartPolicy: Always`` on it, so a sidecar
that holds a segment would block the pod forever (docs/kubernetes.md). The startup-wait
form (the default) is what runs here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from labctl.export.k8s import manifests, render
from labctl.scenario import load_file

pytestmark = [pytest.mark.integration, pytest.mark.podman]

ROOT = Path(__file__).resolve().parents[2]
PODMAN_TIMEOUT_S = 120  # one podman command (play, wait, down); a pod runs for seconds


def podman(*args: str, timeout: float = PODMAN_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}", pytrace=False)
    return proc


@pytest.fixture(scope="session")
def podman_image(shmlab_image: str) -> str:
    """The workload image in Podman's own store, built there by ``labctl build --engine
    podman``: the same sources give the same tag as on Docker, and labctl's build lock keeps
    it from racing the Podman library run beside it (pytest-xdist). A ``docker save |
    podman load`` did race it: it moved the tag to another image while that run used it."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: the kube play tests need it (apt-get install podman catatonit); "
                    "they never skip", pytrace=False)
    build = subprocess.run([sys.executable, "-m", "labctl", "build", "--engine", "podman", "-q"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    if build.returncode != 0:
        pytest.fail(f"labctl build --engine podman failed: {build.stderr.strip()[-2000:]}", pytrace=False)
    if podman("image", "exists", shmlab_image, check=False).returncode != 0:
        pytest.fail(f"labctl build --engine podman did not make {shmlab_image}: {build.stdout.strip()}", pytrace=False)
    return shmlab_image


def owned(text: str) -> str:
    """The manifests ``text`` with this process's pid among each object's labels, as labctl's
    own runs carry it (an export names no owner: it is not a run), so the leak guards of the
    tests running beside this one (pytest-xdist) tell these pods and volumes from their own."""
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})["io.labctl.pid"] = str(os.getpid())
    return yaml.safe_dump_all(docs, sort_keys=False)


class Played:
    """One scenario's pods, played with ``podman kube play``; ``down()`` removes it all."""

    def __init__(self, scenario: str, image: str, tmp: Path) -> None:
        self.scenario = load_file(str(ROOT / "scenarios" / f"{scenario}.yaml"))
        self.run_id = uuid.uuid4().hex
        self.objects = manifests(self.scenario, image=image, run_id=self.run_id)
        self.file = tmp / f"{scenario}.yaml"
        self.file.write_text(owned(render(self.scenario, image=image, run_id=self.run_id)))

    def container(self, role: str) -> str:
        """Podman names a pod's container ``<pod>-<container>``."""
        for pod in self.objects:
            if pod["kind"] == "Pod":
                spec = pod["spec"]
                if role in {c["name"] for c in spec["containers"] + spec.get("initContainers", [])}:
                    return f"{pod['metadata']['name']}-{role}"
        raise KeyError(role)

    def play(self, check: bool = True) -> subprocess.CompletedProcess:
        return podman("kube", "play", str(self.file), check=check)

    def exit_code(self, role: str, timeout: float = 60) -> int:
        out = podman("wait", "--condition", "exited", self.container(role), timeout=timeout).stdout
        return int(out.strip().splitlines()[-1])

    def events(self, role: str) -> list[dict]:
        out = podman("logs", self.container(role)).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def down(self) -> None:
        podman("kube", "down", str(self.file), check=False)
        label = f"label=io.labctl.run-id={self.run_id}"
        for vol in podman("volume", "ls", "-q", "--filter", label).stdout.split():
            podman("volume", "rm", "-f", vol, check=False)

    def leftovers(self) -> list[str]:
        label = f"label=io.labctl.run-id={self.run_id}"
        pods = podman("pod", "ps", "-q", "--filter", label).stdout.split()
        names = [o["metadata"]["name"] for o in self.objects if o["kind"] == "Pod"]
        ctrs = [c for n in names for c in podman("ps", "-aq", "--filter", f"pod={n}").stdout.split()]
        vols = podman("volume", "ls", "-q", "--filter", label).stdout.split()
        return [f"pod {p}" for p in pods] + [f"container {c}" for c in ctrs] + [f"volume {v}" for v in vols]


@pytest.fixture
def play(podman_image: str, tmp_path: Path) -> Iterator:
    played: list[Played] = []

    def _play(scenario: str, check: bool = True) -> Played:
        p = Played(scenario, podman_image, tmp_path)
        played.append(p)
        p.result = p.play(check)
        return p

    yield _play
    for p in played:
        p.down()
    left = [x for p in played for x in p.leftovers()]
    assert not left, f"left behind on Podman: {left}"


def reads(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "read"]


def assert_sees_writer(events: list[dict], n: int) -> None:
    r = reads(events)
    assert len(r) >= n, events
    assert all(e["ip"] == "127.0.0.1" for e in r), r
    counts = [e["count"] for e in r]
    assert counts == sorted(counts) and counts[-1] > counts[0], counts


@pytest.mark.parametrize("scenario", ["sysv-shareable", "posix-shareable"])
def test_joined_pair_plays_as_one_pod(play, scenario: str) -> None:
    p = play(scenario)
    assert p.exit_code("reader") == 0
    events = p.events("reader")
    assert_sees_writer(events, 5)
    starts = {e["ipcns"] for role in ("writer", "reader") for e in p.events(role) if e["event"] == "start"}
    assert len(starts) == 1, f"writer and reader in one pod share one IPC namespace, saw {starts}"


def test_posix_outsider_pod_sees_another_dev_shm(play) -> None:
    p = play("posix-shareable")
    assert p.exit_code("outsider") == 25
    errors = [e for e in p.events("outsider") if e["event"] == "error"]
    assert errors and errors[0]["call"] == "shm_open" and errors[0]["errno"] == "ENOENT"


def test_mmap_volume_plays_as_two_pods_on_one_claim(play) -> None:
    p = play("mmap-volume")
    assert p.exit_code("reader") == 0
    events = p.events("reader")
    assert_sees_writer(events, 5)
    ns = {e["ipcns"] for role in ("writer", "reader") for e in p.events(role) if e["event"] == "start"}
    assert len(ns) == 2, "two pods, two IPC namespaces: only the claim's file is shared"
    claim = next(o["metadata"]["name"] for o in p.objects if o["kind"] == "PersistentVolumeClaim")
    assert podman("volume", "exists", claim, check=False).returncode == 0


def test_pod_start_race_reader_finds_no_segment(play) -> None:
    p = play("pod-start-race", check=False)
    # the reader is the init container that pins the losing side: the pod stops there
    assert p.result.returncode != 0 and "exited with code 10" in p.result.stderr, p.result.stderr
    assert p.exit_code("reader") == 10
    errors = [e for e in p.events("reader") if e["event"] == "error"]
    assert errors[0]["call"] == "shmget" and errors[0]["errno"] == "ENOENT"
    assert not reads(p.events("reader"))


def test_pod_start_wait_reader_waits_for_the_segment(play) -> None:
    p = play("pod-start-wait")
    assert p.exit_code("reader") == 0
    assert_sees_writer(p.events("reader"), 5)


def test_pod_shares_one_dev_shm_sized_by_an_empty_dir(play) -> None:
    p = play("pod-shared-devshm")
    assert p.exit_code("reader") == 0
    assert_sees_writer(p.events("reader"), 5)
    pod = next(o for o in p.objects if o["kind"] == "Pod" and len(o["spec"]["containers"]) > 1)
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}} in pod["spec"]["volumes"]
    mounts = podman("inspect", p.container("reader"), "--format", "{{json .Mounts}}").stdout
    assert any(m["Destination"] == "/dev/shm" for m in json.loads(mounts)), mounts
    assert p.exit_code("outsider") == 25
