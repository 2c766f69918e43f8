"""Fixtures for tests that use the real Docker engine.

* ``engine`` / ``docker_client``: session connections; an unreachable engine FAILS every
  integration test (naming the address), it never skips them: a green run must mean
  the lab was exercised.
* ``shmlab_image``: the workload image, built once per session by ``labctl.build``.
* ``leak_guard`` (autouse): after each test, nothing labelled ``io.labctl.managed=true``
  that the test created may remain, and no new host SysV segment may outlive its
  creator. Leftovers are removed (so one leak does not fail the next tests too) and
  the test fails naming them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import pytest
import sysv_ipc

from tests.helpers import wait_until

if TYPE_CHECKING:
    from labctl.runtime import Engine

MANAGED_FILTER = {"label": ["io.labctl.managed=true"]}
OWNER_PID_LABEL = "io.labctl.pid"
COMPOSE_PROJECT = re.compile(r"^labctltest-(\d+)-")
SYSV_SHM = Path("/proc/sysvipc/shm")
# Teardown of a container is synchronous, but the engine may still be finishing an
# auto-remove or a compose "down" in the background: leftovers get this long to vanish.
LEAK_GRACE_S = 5.0


def engine_address() -> str:
    """Where the SDK looks for the engine, for failure messages."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


# ==== connections ====


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A docker SDK client to an engine that answered a ping; fails (not skips) otherwise."""
    problem = ""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure here means "no engine"
        problem = str(e)
    if problem:  # failed outside the except block, so the report is the message, not a chain
        pytest.fail(
            f"Docker engine unreachable at {engine_address()}: {problem}. Integration tests need a "
            "running engine (start dockerd, or set DOCKER_HOST); they never skip.",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def engine(docker_client: docker.DockerClient) -> Iterator[Engine]:
    """labctl's own engine connection (``labctl.runtime.Engine.connect``)."""
    from labctl.errors import LabctlError
    from labctl.runtime import Engine

    problem = ""
    try:
        eng = Engine.connect()
    except LabctlError as e:
        problem = str(e)
    if problem:
        pytest.fail(f"labctl cannot reach the engine at {engine_address()}: {problem}", pytrace=False)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def shmlab_image(engine: Engine) -> str:
    """Build (or find up to date) the workload image once per session; returns its ref."""
    # Imported here: labctl.build is another layer, and a broken build must fail the
    # tests that need the image, not the collection of every test.
    from labctl.build import ensure_image
    from labctl.errors import LabctlError

    problem = ""
    ref: object = None
    try:
        ref = ensure_image(engine)
    except LabctlError as e:
        problem = str(e)
    if problem:
        pytest.fail(f"building the shmlab image failed: {problem}", pytrace=False)
    return str(ref) if ref else "labctl/shmlab:latest"


# ==== leak guard ====


@dataclass(frozen=True)
class Segment:
    """One row of /proc/sysvipc/shm."""

    key: int
    shmid: int
    cpid: int
    nattch: int

    def describe(self) -> str:
        return f"shm key=0x{self.key & 0xFFFFFFFF:08x} shmid={self.shmid} cpid={self.cpid} nattch={self.nattch}"


def host_segments() -> dict[int, Segment]:
    """The SysV segments of the host's (this process's) IPC namespace, by shmid."""
    segments: dict[int, Segment] = {}
    try:
        lines = SYSV_SHM.read_text().splitlines()[1:]
    except OSError:
        return segments
    for line in lines:
        cols = line.split()
        if len(cols) < 7:
            continue
        key, shmid, cpid, nattch = int(cols[0]), int(cols[1]), int(cols[4]), int(cols[6])
        segments[shmid] = Segment(key, shmid, cpid, nattch)
    return segments


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leaked_segment(seg: Segment) -> bool:
    """A new segment is a leak when it outlives its creator (or was created by us).

    A segment whose creator still runs belongs to a live program (a teammate's
    benchmark on a shared machine, a container the container check reports anyway).
    """
    return seg.cpid in (0, os.getpid()) or not _alive(seg.cpid)


def _foreign(labels: dict[str, str]) -> bool:
    """Objects of another live process (a concurrent run on a shared dev machine).

    labctl labels its objects with its pid; the compose tests put theirs in the project
    name (``labctltest-<pid>-...``). Anything else counts as ours.
    """
    pid = labels.get(OWNER_PID_LABEL, "")
    project = COMPOSE_PROJECT.match(labels.get("com.docker.compose.project", ""))
    if not pid and project:
        pid = project.group(1)
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    return _alive(int(pid))


@dataclass(frozen=True)
class Leftover:
    """One object that should not be there, with a way to remove it."""

    what: str
    remove: Callable[[], None]


def _managed_objects(client: docker.DockerClient) -> dict[str, Leftover]:
    """Every labelled container (any state), volume and network, keyed by kind:id."""
    found: dict[str, Leftover] = {}
    for c in client.containers.list(all=True, filters=MANAGED_FILTER, ignore_removed=True):
        if not _foreign(c.labels):
            found[f"container:{c.id}"] = Leftover(
                f"container {c.name} ({c.status})", lambda c=c: c.remove(force=True, v=True)
            )
    for v in client.volumes.list(filters=MANAGED_FILTER):
        if not _foreign(v.attrs.get("Labels") or {}):
            found[f"volume:{v.name}"] = Leftover(f"volume {v.name}", lambda v=v: v.remove(force=True))
    for n in client.networks.list(filters=MANAGED_FILTER):
        if not _foreign(n.attrs.get("Labels") or {}):
            found[f"network:{n.id}"] = Leftover(f"network {n.name}", n.remove)
    return found


def _remove_segment(shmid: int) -> None:
    """``shmctl(shmid, IPC_RMID)``; a segment already gone is not a problem."""
    try:
        sysv_ipc.remove_shared_memory(shmid)
    except sysv_ipc.ExistentialError:
        pass


def _leaks(client: docker.DockerClient, before_objects: set[str], before_segments: set[int]) -> dict[str, Leftover]:
    leaks = {k: v for k, v in _managed_objects(client).items() if k not in before_objects}
    for shmid, seg in host_segments().items():
        if shmid not in before_segments and _leaked_segment(seg):
            leaks[f"shm:{shmid}"] = Leftover(f"host SysV {seg.describe()}", lambda s=shmid: _remove_segment(s))
    return leaks


@pytest.fixture(autouse=True)
def leak_guard(docker_client: docker.DockerClient, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves labelled objects or host SysV segments behind."""
    before_objects = set(_managed_objects(docker_client))
    before_segments = set(host_segments())
    yield
    leaks: dict[str, Leftover] = {}

    def clean() -> bool:
        nonlocal leaks
        leaks = _leaks(docker_client, before_objects, before_segments)
        return not leaks

    if wait_until(clean, LEAK_GRACE_S):
        return
    problems: list[str] = []
    for leftover in leaks.values():
        try:
            leftover.remove()
        except docker.errors.NotFound:
            pass
        except Exception as e:  # noqa: BLE001 - report every leftover, not the first error
            problems.append(f"{leftover.what}: removal failed: {e}")
    names = "\n  ".join(sorted(l.what for l in leaks.values()))
    extra = ("\nremoval problems:\n  " + "\n  ".join(problems)) if problems else ""
    pytest.fail(f"{request.node.nodeid} left objects behind (now removed):\n  {names}{extra}", pytrace=False)
