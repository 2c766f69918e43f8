"""Fixtures for tests that use the real engines (Docker, and Podman through its API socket).

* ``engine`` / ``docker_client``: session connections; an unreachable engine FAILS every
  integration test (naming the address), it never skips them: a green run must mean
  the lab was exercised.
* ``engine_name`` (params ``docker``, ``podman``, module scope) / ``engine_client``: what
  the tests that run on both engines are parametrised over; a missing Podman FAILS them.
* ``shmlab_image``: the workload image, built once per session by ``labctl.images.build``.
* ``rootless_podman`` / ``rootless_client``: the rootless user's Podman (``.ci/run`` sets it
  up as ``labctl-rootless``); its tests FAIL when it is missing, with what to start.
* ``leak_guard`` (autouse): after each test, nothing labelled ``io.labctl.managed=true``
  that the test created may remain on any engine (Docker, rootful and rootless Podman:
  containers, volumes, networks, and Podman's pods); no new host IPC object of any kind (SysV segment
  outliving its creator, semaphore set, message queue, /dev/shm entry, POSIX message
  queue: ``tests/integration/hostipc.py``); and no IPC namespace created during the test
  may still be held by one of our containers. Leftovers are removed (so one leak does
  not fail the next tests too) and the test fails naming them. Its window (snapshot, test,
  check) holds ``tests/integration/alone.py``'s lock: shared, or alone for a test marked
  ``alone`` (under pytest-xdist no other test runs meanwhile).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import pytest

from tests.helpers import pid_alive, rootless_podman as rootless_address, wait_until
from tests.integration import alone, hostipc

if TYPE_CHECKING:
    from labctl.runtime import Engine

MANAGED_FILTER = {"label": ["io.labctl.managed=true"]}
OWNER_PID_LABEL = "io.labctl.pid"
COMPOSE_PROJECT = re.compile(r"^labctltest-(\d+)-")
# Teardown of a container is synchronous, but the engine may still be finishing an
# auto-remove or a compose "down" in the background: leftovers get this long to vanish.
LEAK_GRACE_S = 5.0


def engine_address() -> str:
    """Where the SDK looks for the engine, for failure messages."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


ENGINE_NAMES = ("docker", "podman")


def podman_address() -> str | None:
    """Podman's API socket as labctl finds it (None: no service listening)."""
    from labctl.runtime.lookup import podman_address as find

    return find()


# ==== connections ====


def _podman_client(address: str | None = None) -> docker.DockerClient | None:
    """A docker SDK client on Podman's compatible socket (``address``, else where labctl
    finds it), or None if none answers."""
    address = address or podman_address()
    if address is None:
        return None
    try:
        client = docker.DockerClient(base_url=address, timeout=30)
        client.ping()
    except Exception:  # noqa: BLE001 - "no Podman" for the leak guard; the podman tests fail on their own
        return None
    return client


@pytest.fixture(scope="session")
def podman_client() -> Iterator[docker.DockerClient | None]:
    """Podman's compatible API, or None; the leak guard watches it when there."""
    client = _podman_client()
    yield client
    if client is not None:
        client.close()


@pytest.fixture(scope="session")
def rootless_client() -> Iterator[docker.DockerClient | None]:
    """The rootless user's Podman (``tests.helpers.rootless_podman``), or None; the leak
    guard watches it when there."""
    address = rootless_address()
    client = _podman_client(address) if address else None
    yield client
    if client is not None:
        client.close()


@pytest.fixture(scope="session")
def rootless_podman(rootless_client: docker.DockerClient | None) -> str:
    """The ``unix://`` address of the rootless Podman service; FAILS (never skips) when it
    does not answer, saying what to set up (.ci/run does all of it)."""
    from labctl.runtime.lookup import podman_start_hint
    from tests.helpers import ROOTLESS_USER

    address = rootless_address()
    if address is None:
        pytest.fail(f"no user {ROOTLESS_USER}: the rootless Podman tests need it, with subuid/subgid ranges and "
                    "its Podman API service (.ci/run sets all of it up)", pytrace=False)
    if rootless_client is None:
        pytest.fail(f"the rootless Podman API service at {address} does not answer. "
                    + podman_start_hint(address), pytrace=False)
    return address


@pytest.fixture(scope="module", params=ENGINE_NAMES)
def engine_name(request: pytest.FixtureRequest, podman_client: docker.DockerClient | None) -> str:
    """Each engine in turn; Podman missing FAILS (CI installs and starts it: .ci/run)."""
    if request.param == "podman" and podman_client is None:
        from labctl.runtime.lookup import podman_start_hint

        pytest.fail("Podman's API service is not reachable; the tests run on both engines. "
                    + podman_start_hint(), pytrace=False)
    return str(request.param)


@pytest.fixture(scope="module")
def engine_client(engine_name: str, docker_client: docker.DockerClient,
                  podman_client: docker.DockerClient | None) -> docker.DockerClient:
    """An SDK client on the engine of ``engine_name``."""
    return podman_client if engine_name == "podman" else docker_client  # type: ignore[return-value]


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
    # Imported here: labctl.images.build is another layer, and a broken build must fail the
    # tests that need the image, not the collection of every test.
    from labctl.images.build import ensure_image
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


@dataclass(frozen=True)
class LibraryRun:
    """The session's one run of the whole library on Docker: the finished process (stdout:
    the JSON report) and the folder holding its JUnit (``junit.xml``) and text
    (``summary.txt``) reports."""

    proc: subprocess.CompletedProcess
    reports: Path


@pytest.fixture(scope="session")
def docker_library_run(shmlab_image: str, tmp_path_factory: pytest.TempPathFactory) -> LibraryRun:
    """The whole library on Docker once per session, shared by the tests that judge it
    (tests/integration/test_run.py's report checks, the first-contact test, the pytest
    plugin's comparison): ``labctl run scenarios --engine docker --jobs 2 --format json``
    with every report format, with no ``LABCTL_*`` setting of the caller and binfmt_misc
    hidden (``LABCTL_BINFMT_DIR`` pointing to an empty folder), as on a machine without
    emulation: arm64-amd64-shared is skipped with its reason and fix here, and runs for real
    in the Podman library run and the linux/arm64 run (test_platforms.py). Without
    ``--allow-host-ipc``, as a newcomer runs it: the scenarios in the host's IPC namespace are
    skipped with the flag to give, and run on their own (test_run.py's
    test_the_host_ipc_scenarios_pass_given_the_flag), a test no other runs beside."""
    base = tmp_path_factory.mktemp("docker-library")
    empty, out = base / "binfmt_misc", base / "reports"
    empty.mkdir()
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    env["LABCTL_BINFMT_DIR"] = str(empty)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", "scenarios", "--engine", "docker", "--jobs", "2",
                           "--format", "json", "--report", f"junit:{out}/junit.xml",
                           "--report", f"text:{out}/summary.txt"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=1800, check=False, stdin=subprocess.DEVNULL)
    return LibraryRun(proc, out)


# ==== leak guard ====


def _leaked(obj: hostipc.IpcObject) -> bool:
    """A new host IPC object is a leak once no live process other than this one uses it:
    one still in use belongs to a live program (a teammate's benchmark or test on a
    shared machine, a container the container check reports anyway)."""
    return not any(pid not in (0, os.getpid()) and pid_alive(pid) for pid in obj.users)


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
    return pid_alive(int(pid))


@dataclass(frozen=True)
class Leftover:
    """One object that should not be there, with a way to remove it."""

    what: str
    remove: Callable[[], None]


def _pods(client: docker.DockerClient) -> list[dict]:
    """Podman's labelled pods (libpod API on the same socket)."""
    api = client.api
    res = api._get(api.base_url + "/v4.0.0/libpod/pods/json",  # noqa: SLF001 - no public SDK call for pods
                   params={"filters": '{"label": ["io.labctl.managed=true"]}'})
    return list(api._result(res, json=True) or [])  # noqa: SLF001


def _remove_pod(client: docker.DockerClient, pod_id: str) -> None:
    api = client.api
    api._result(api._delete(api.base_url + f"/v4.0.0/libpod/pods/{pod_id}", params={"force": True}))  # noqa: SLF001


def _managed_objects(client: docker.DockerClient, engine: str = "docker") -> dict[str, Leftover]:
    """Every labelled container (any state), volume, network (and Podman pod) on one
    engine, keyed by engine:kind:id."""
    found: dict[str, Leftover] = {}
    if engine.startswith("podman"):  # pods first: removing one removes its containers
        for p in _pods(client):
            if not _foreign(p.get("Labels") or {}):
                found[f"podman:pod:{p['Id']}"] = Leftover(f"podman pod {p.get('Name')}",
                                                          lambda p=p: _remove_pod(client, p["Id"]))
    # the list call alone (no inspect per container): a container removed meanwhile makes
    # Podman's inspect answer 500 "no such container", which ignore_removed does not cover
    for c in client.api.containers(all=True, filters=MANAGED_FILTER):
        if not _foreign(c.get("Labels") or {}):
            name = (c.get("Names") or [c["Id"]])[0].lstrip("/")
            found[f"{engine}:container:{c['Id']}"] = Leftover(
                f"{engine} container {name} ({c.get('State')})",
                lambda c=c: client.api.remove_container(c["Id"], force=True, v=True)
            )
    for v in client.volumes.list(filters=MANAGED_FILTER):
        if not _foreign(v.attrs.get("Labels") or {}):
            found[f"{engine}:volume:{v.name}"] = Leftover(f"{engine} volume {v.name}", lambda v=v: v.remove(force=True))
    for n in client.networks.list(filters=MANAGED_FILTER):
        if not _foreign(n.attrs.get("Labels") or {}):
            found[f"{engine}:network:{n.id}"] = Leftover(f"{engine} network {n.name}", n.remove)
    return found


def _all_managed(clients: dict[str, docker.DockerClient | None]) -> dict[str, Leftover]:
    found: dict[str, Leftover] = {}
    for name, client in clients.items():
        if client is not None:
            found.update(_managed_objects(client, name))
    return found


def _labels_of(clients: list[docker.DockerClient], cid: str) -> dict[str, str] | None:
    """The labels of container ``cid`` on whichever engine has it."""
    for client in clients:
        try:
            return dict(client.containers.get(cid).labels)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError:
            continue
    return None


def _held_namespaces(clients: list[docker.DockerClient], before: set[str]) -> dict[str, Leftover]:
    """IPC namespaces created since ``before`` that one of our containers still holds,
    with what they hold (their objects die with the last holder: removing it is the fix)."""
    found: dict[str, Leftover] = {}
    for ns, pids in hostipc.namespaces().items():
        if ns in before:
            continue
        for pid in pids:
            cid = hostipc.container_of(pid)
            if cid is None:
                continue
            labels = _labels_of(clients, cid)
            if labels is None:
                continue
            if labels.get("io.labctl.managed") == "true" and not _foreign(labels):
                found[f"ipcns:{ns}"] = Leftover(
                    f"IPC namespace {ns} still held by container {cid[:12]} (pid {pid}): "
                    f"{hostipc.namespace_objects(pid)}", lambda: None)
                break
    return found


def _leaks(clients: dict[str, docker.DockerClient | None], before_objects: set[str], before_ipc: set[str],
           before_ns: set[str]) -> dict[str, Leftover]:
    leaks = {k: v for k, v in _all_managed(clients).items() if k not in before_objects}
    for key, obj in hostipc.host_objects().items():
        if key not in before_ipc and _leaked(obj):
            leaks[key] = Leftover(obj.text, obj.remove)
    leaks.update(_held_namespaces([c for c in clients.values() if c is not None], before_ns))
    return leaks


NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()


@pytest.fixture(autouse=True)
def leak_guard(docker_client: docker.DockerClient, podman_client: docker.DockerClient | None,
               rootless_client: docker.DockerClient | None, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves labelled objects (on Docker, Podman or the rootless
    Podman), host IPC objects of any kind, or IPC namespaces held by its containers behind."""
    mine = request.node.get_closest_marker("alone") is not None
    after = request.node.stash.get(NEXT_ITEM, None)
    keep = mine and after is not None and after.get_closest_marker("alone") is not None
    with alone.hold("alone" if mine else "shared", keep=keep):
        yield from _guarded(docker_client, podman_client, rootless_client, request)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Note the test this process runs next (``leak_guard`` keeps an alone lock for it)."""
    item.stash[NEXT_ITEM] = nextitem


def pytest_sessionfinish(session: pytest.Session) -> None:
    alone.give_back()


def _guarded(docker_client: docker.DockerClient, podman_client: docker.DockerClient | None,
             rootless_client: docker.DockerClient | None, request: pytest.FixtureRequest) -> Iterator[None]:
    clients = {"docker": docker_client, "podman": podman_client, "podman-rootless": rootless_client}
    before_objects = set(_all_managed(clients))
    before_ipc = set(hostipc.host_objects())
    before_ns = set(hostipc.namespaces())
    yield
    leaks: dict[str, Leftover] = {}

    def clean() -> bool:
        nonlocal leaks
        leaks = _leaks(clients, before_objects, before_ipc, before_ns)
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
