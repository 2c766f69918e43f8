"""Compose files rendered by ``labctl compose`` really run, under Compose v2 and 1.29:
the stacks in compose/ do what their scenarios say, and for the library's scenarios (a
cover of every construct, workload and gated event) a service that labctl starts after an
event starts only once that event happened."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker
import pytest

from labctl import scenario as scen
from labctl.export.compose import IMAGE_VARIABLE, render_compose
from tests.helpers import (covering_subset, gated_starts, library_compose_constructs, wait_until,
                           waits_on_a_failing_exit)
from tests.integration.compose_flavours import FLAVOURS, compose_command
from tests.integration.test_compose_demo import DEMO_DEADLINE_S, unique_project

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))


def v1_subset() -> list[Path]:
    """The smallest part of the library (greedy cover) whose renderings use every compose
    construct the whole library's renderings use, and take every branch of the test below:
    1.29 reads the same files as v2, so what it must show is that it understands each
    construct (tests/unit/test_compose_cover.py pins the covers)."""
    return [Path(p) for p in covering_subset(library_compose_constructs(LIBRARY))]


def v2_subset() -> list[Path]:
    """The part of the library v2 brings up: the cover of every construct, every workload and
    every event-gated start (each event with the workload that prints it), about a third of
    the library. Every scenario itself runs on both engines in tests/integration/test_run.py;
    what compose adds is its reading of the constructs and the order of gated starts."""
    return [Path(p) for p in covering_subset(library_compose_constructs(LIBRARY, runs=True))]

START_DEADLINE_S = 60.0
PARALLEL = 4  # compose projects at a time

pytestmark = pytest.mark.compose


@pytest.fixture(params=FLAVOURS)
def compose(request: pytest.FixtureRequest) -> str:
    """``docker compose`` (v2) and ``docker-compose`` (1.29), one test run each."""
    return compose_command(request.param)


class Stack:
    """One compose project from a file, brought up detached; ``down -v`` on close."""

    def __init__(self, compose: str, file: Path, image: str, client: docker.DockerClient) -> None:
        self.project = unique_project()
        self.base = compose.split() + ["-f", str(file), "-p", self.project]
        self.env = {**os.environ, IMAGE_VARIABLE: image}  # this session's build, not a moving :latest
        self.client = client

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.base + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False, env=self.env)

    def containers(self) -> dict[str, docker.models.containers.Container]:
        found = self.client.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
        return {c.labels["com.docker.compose.service"]: c for c in found}

    def close(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "2")


@pytest.fixture
def stack(compose: str, shmlab_image: str, docker_client: docker.DockerClient) -> Iterator[callable]:
    made: list[Stack] = []

    def make(file: Path) -> Stack:
        s = Stack(compose, file, shmlab_image, docker_client)
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.close()


def events(logs: str) -> list[dict]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith("{")]


def run_to_exit(s: Stack, service: str) -> tuple[int, str]:
    """``up -d``, wait for ``service`` to exit; its exit code and output."""
    up = s.compose("up", "-d", timeout=DEMO_DEADLINE_S)
    assert up.returncode == 0, up.stdout + up.stderr

    def exited() -> bool:
        c = s.containers().get(service)
        return c is not None and c.status in ("exited", "dead")

    assert wait_until(exited, DEMO_DEADLINE_S, pause=0.2), f"{service} did not exit"
    c = s.containers()[service]
    c.reload()
    return int(c.attrs["State"]["ExitCode"]), c.logs().decode(errors="replace")


def test_mmap_stack_reader_sees_the_writer(stack) -> None:
    code, out = run_to_exit(stack(ROOT / "compose/mmap.yml"), "reader")
    assert code == 0, out
    reads = [e for e in events(out) if e["event"] == "read"]
    assert len(reads) == 5 and all(e["ip"] == "127.0.0.1" for e in reads)
    counts = [e["count"] for e in reads]
    assert counts == sorted(set(counts)) and counts[0] > 0, counts
    assert events(out)[0]["uid"] == 65534  # the workload user, as labctl runs it


def test_isolated_stack_reader_gets_enoent(stack) -> None:
    code, out = run_to_exit(stack(ROOT / "compose/isolated.yml"), "reader")
    assert code == 10, out  # the shmget exit code
    errors = [e for e in events(out) if e["event"] == "error"]
    assert errors and errors[0]["call"] == "shmget" and errors[0]["errno"] == "ENOENT"


# ==== every library scenario: event-gated starts ====


def _instant(text: str) -> float:
    """Docker's RFC 3339 nanosecond timestamps as epoch seconds (microsecond precision)."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0")[:6])


def check_order(s: Stack, gated: list[tuple[str, str, str]]) -> list[str]:
    """Wait until every gated dependent started; each must have started after its donor
    printed the event (donor start + the event's t_ms). Returns the problems."""
    def all_started() -> bool:
        cs = s.containers()
        return all(d in cs and cs[d].attrs["State"].get("StartedAt", "0001").startswith("20") for d, _, _ in gated)

    if not wait_until(all_started, START_DEADLINE_S, pause=0.25):
        return [f"not every gated service started within {START_DEADLINE_S:.0f}s: {sorted(s.containers())}"]
    cs = s.containers()
    problems = []
    for dependent, donor, event in gated:
        d, w = cs[dependent], cs[donor]
        d.reload()
        w.reload()
        seen = [e for e in events(w.logs().decode(errors="replace")) if e.get("event") == event]
        if not seen:
            problems.append(f"{donor} never printed '{event}', yet {dependent} started")
            continue
        happened = _instant(w.attrs["State"]["StartedAt"]) + seen[0]["t_ms"] / 1000.0
        started = _instant(d.attrs["State"]["StartedAt"])
        if started < happened:
            problems.append(f"{dependent} started {happened - started:.3f}s before {donor} printed '{event}'")
    return problems


def cover(compose: str) -> list[Path]:
    """v2: the library's cover of constructs, workloads and gated events (v2_subset); 1.29:
    the cover of constructs (v1_subset)."""
    return v2_subset() if compose.split()[:2] == ["docker", "compose"] else v1_subset()


def in_host_ipc(path: Path) -> bool:
    """The scenario has a container in the host's IPC namespace (``ipc: host``)."""
    return any(c.ipc == "host" for c in scen.load_file(str(path)).containers)


def test_every_library_scenario_runs_and_gates_its_starts(compose: str, shmlab_image: str, engine,
                                                          docker_client: docker.DockerClient,
                                                          tmp_path: Path) -> None:
    """The cover, but for its scenarios in the host's IPC namespace (the next test)."""
    run_up(compose, [p for p in cover(compose) if not in_host_ipc(p)], shmlab_image, engine, docker_client, tmp_path)


@pytest.mark.alone("ipc: host: segments in the host's IPC namespace")
def test_the_host_ipc_scenarios_of_the_cover_run_and_gate_their_starts(compose: str, shmlab_image: str, engine,
                                                                       docker_client: docker.DockerClient,
                                                                       tmp_path: Path) -> None:
    files = [p for p in cover(compose) if in_host_ipc(p)]
    assert files, "the cover has no scenario in the host's IPC namespace: the construct is untested"
    run_up(compose, files, shmlab_image, engine, docker_client, tmp_path)


def run_up(compose: str, files: list[Path], shmlab_image: str, engine,  # noqa: ANN001 - labctl's Engine
           docker_client: docker.DockerClient, tmp_path: Path) -> None:
    """Each of ``files`` rendered by ``labctl compose``, brought up by ``compose`` (a few at a
    time) and down again: each starts (or fails to, where a check expects it) and its gated
    starts wait for their events."""
    def one(path: Path) -> list[str]:
        scenario = scen.load_file(str(path))
        if not scenario.runs_on("docker"):
            return []  # engines: [podman] (keep-id...): compose here talks to Docker
        file = tmp_path / f"{scenario.name}.yml"
        file.write_text(render_compose(scenario))
        s = Stack(compose, file, shmlab_image, docker_client)
        s.env.update(platform_env)  # the images of containers with a platform: of their own
        try:
            up = s.compose("up", "-d", timeout=DEMO_DEADLINE_S)
            failed_start = up.returncode != 0
            if failed_start and not (any(ch.kind == "refused" for ch in scenario.checks)
                                     or waits_on_a_failing_exit(scenario)):
                return [f"{path.name}: up failed: {(up.stdout + up.stderr).strip()[-400:]}"]
            gated = gated_starts(scenario)
            return [f"{path.name}: {p}" for p in (check_order(s, gated) if gated and not failed_start else [])]
        finally:
            s.close()

    from labctl.images import build

    from labctl.images import platforms
    from labctl.export.compose import platform_variable

    from labctl.images import examples

    scenarios = [scen.load_file(str(p)) for p in files]
    # the library's own example programs (image: labctl/sensor:latest): compose would try to
    # pull them from a registry on a machine where no `labctl run` has built them yet
    for name in examples.referenced(c.image for s in scenarios for c in s.containers if c.image):
        examples.ensure(engine, name)
    named = sorted({c.platform for s in scenarios for c in s.containers if c.platform})

    def platform_image(name: str) -> str:
        return build.ensure_image(engine, platform=platforms.parse(name)).image

    # side by side: on a fresh machine each emulated platform's first build is zig building
    # musl for it, about 40 s on one core each
    with ThreadPoolExecutor(max(1, len(named))) as pool:
        platform_env = {platform_variable(name): image for name, image in zip(named, pool.map(platform_image, named))}
    with ThreadPoolExecutor(PARALLEL) as pool:
        problems = [p for ps in pool.map(one, files) for p in ps]
    assert not problems, "\n".join(problems)


def test_the_order_check_fails_on_a_start_that_does_not_wait(compose: str, shmlab_image: str,
                                                             docker_client: docker.DockerClient, tmp_path: Path) -> None:
    """What `after: {writer: mapped}` rendered as service_started did: the reader races."""
    import yaml

    scenario = scen.load_file(str(ROOT / "scenarios/mmap-volume.yaml"))
    doc = yaml.safe_load(render_compose(scenario))
    doc["services"]["writer"]["command"] += ["--truncate-delay", "2s"]  # `mapped` comes 2 s late
    doc["services"]["reader"]["depends_on"]["writer"] = {"condition": "service_started"}
    file = tmp_path / "racy.yml"
    file.write_text(yaml.safe_dump(doc))
    s = Stack(compose, file, shmlab_image, docker_client)
    try:
        assert s.compose("up", "-d", timeout=DEMO_DEADLINE_S).returncode == 0
        problems = check_order(s, gated_starts(scenario))
    finally:
        s.close()
    # caught either way: the reader started before the event, or before it was even printed
    assert problems and ("before writer printed 'mapped'" in problems[0]
                         or "never printed 'mapped', yet reader started" in problems[0]), problems
