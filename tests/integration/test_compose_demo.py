"""The root docker-compose.yml demo, run by docker compose v2 and by docker-compose 1.29.

The writer creates a SysV segment in a shareable IPC namespace; the reader joins it
with ``ipc: "service:writer"``, must see ip 127.0.0.1 and a rising count, marks the
segment for removal, and the writer then stops by itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from pytest_docker.plugin import DockerComposeExecutor, Services

from tests.integration.compose_flavours import FLAVOURS, compose_command

pytestmark = [pytest.mark.integration, pytest.mark.compose]

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
READ_LINE = re.compile(r"reader: read count=(\d+) ip=(\S*)")
READS = 8  # the reader's --reads in docker-compose.yml
DEMO_DEADLINE_S = 90.0


def unique_project() -> str:
    """Compose project names allow [a-z0-9_-]; unique so parallel runs never collide.

    The pid lets the leak guard of a concurrent pytest tell our stack from its own.
    """
    return f"labctltest-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# ==== pytest-docker overrides ====


@pytest.fixture(scope="session", params=FLAVOURS)
def docker_compose_command(request: pytest.FixtureRequest) -> str:
    """pytest-docker's command fixture, once per compose flavour (v2 and 1.29)."""
    return compose_command(request.param)


@pytest.fixture
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture
def docker_compose_project_name() -> str:
    return unique_project()


@pytest.fixture
def docker_setup() -> list[str]:
    # No --build: the image comes from labctl's own build (the shmlab_image fixture).
    return ["up -d"]


@pytest.fixture
def docker_cleanup() -> list[str]:
    return ["down -v --remove-orphans"]


@pytest.fixture
def docker_services(
    shmlab_image: str,
    docker_compose_command: str,
    docker_compose_file: str,
    docker_compose_project_name: str,
    docker_setup: list[str],
    docker_cleanup: list[str],
) -> Iterator[Services]:
    """pytest-docker's fixture, function-scoped and with setup inside the cleanup guard.

    The plugin's own one is session-scoped (the stack would outlive the per-test leak
    guard) and runs ``up`` before its ``try``, so a failing ``up`` leaks what it made.
    """
    compose = DockerComposeExecutor(docker_compose_command, docker_compose_file, docker_compose_project_name)
    try:
        for command in docker_setup:
            compose.execute(command)
        yield Services(compose)
    finally:
        for command in docker_cleanup:
            compose.execute(command)


# ==== helpers ====


def service_container(client: docker.DockerClient, project: str, service: str) -> docker.models.containers.Container:
    """The one container compose made for ``service`` in ``project``."""
    found = client.containers.list(
        all=True,
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]},
    )
    assert len(found) == 1, f"expected one {service} container in project {project}, found {len(found)}"
    return found[0]


def wait_exited(container: docker.models.containers.Container, timeout: float) -> int:
    """Poll the container's state until it exited; returns its exit code. Fails on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs["State"]
        if state["Status"] in ("exited", "dead"):
            return int(state["ExitCode"])
        if time.monotonic() >= deadline:
            logs = container.logs().decode(errors="replace")[-2000:]
            pytest.fail(f"{container.name} still {state['Status']} after {timeout:.0f}s; output:\n{logs}")
        time.sleep(0.2)  # poll interval of a bounded wait


def assert_reader_saw_writer(output: str) -> None:
    """The reader's lines show ip 127.0.0.1 and a strictly rising count."""
    reads = [(int(count), ip) for count, ip in READ_LINE.findall(output)]
    assert len(reads) == READS, f"expected {READS} read lines, got {len(reads)}:\n{output}"
    assert {ip for _, ip in reads} == {"127.0.0.1"}, output
    counts = [count for count, _ in reads]
    assert all(b > a for a, b in zip(counts, counts[1:])), f"count not strictly rising: {counts}"
    assert counts[0] > 0, "the reader saw a zeroed segment: not the writer's"


# ==== tests ====


def test_reader_sees_writer_through_shared_ipc_namespace(
    docker_services: Services, docker_client: docker.DockerClient, docker_compose_project_name: str
) -> None:
    reader = service_container(docker_client, docker_compose_project_name, "reader")
    writer = service_container(docker_client, docker_compose_project_name, "writer")

    assert wait_exited(reader, DEMO_DEADLINE_S) == 0, reader.logs().decode(errors="replace")
    reader_out = reader.logs(stdout=True, stderr=True).decode(errors="replace")
    assert_reader_saw_writer(reader_out)
    assert re.search(r"^reader: removed shmid=\d+$", reader_out, re.M), reader_out

    # The writer observed the removal mark itself (IPC_STAT shows SHM_DEST) and stopped on
    # its own, long before its 600 counts: the segment really was the shared one.
    assert wait_exited(writer, DEMO_DEADLINE_S) == 0
    writer_out = writer.logs(stdout=True, stderr=True).decode(errors="replace")
    assert re.search(r"^writer: marked$", writer_out, re.M), writer_out
    assert re.search(r"^writer: done exit=0", writer_out, re.M), writer_out

    # Both ran in one IPC namespace, distinct from the host's.
    namespaces = {re.search(r"ipcns=(ipc:\[\d+\])", out).group(1)  # type: ignore[union-attr]
                  for out in (reader_out, writer_out)}
    assert len(namespaces) == 1
    assert Path("/proc/self/ns/ipc").readlink().as_posix() not in namespaces

    assert writer.attrs["HostConfig"]["IpcMode"] == "shareable"
    assert reader.attrs["HostConfig"]["IpcMode"] == f"container:{writer.id}"
    assert reader.labels["io.labctl.managed"] == "true" and reader.labels["io.labctl.role"] == "reader"


def test_compose_up_exit_code_from_reader(shmlab_image: str, docker_compose_command: str) -> None:
    """What the README tells a user to type: ``up --exit-code-from reader`` ends with 0."""
    project = unique_project()
    base = docker_compose_command.split() + ["-f", str(COMPOSE_FILE), "-p", project]
    try:
        done = subprocess.run(
            base + ["up", "--no-color", "--exit-code-from", "reader"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEMO_DEADLINE_S, check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert_reader_saw_writer(output)
    finally:
        subprocess.run(base + ["down", "-v", "--remove-orphans"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120, check=False)
