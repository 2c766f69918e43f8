"""The stacks in compose/ (rendered from library scenarios) really run under compose."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.compose_flavours import FLAVOURS, compose_command
from tests.integration.test_compose_demo import DEMO_DEADLINE_S, unique_project

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.compose


def events(output: str, role: str) -> list[dict]:
    """The JSON events of one workload role in compose's prefixed, interleaved output."""
    found = []
    for line in output.splitlines():
        _, _, rest = line.partition("| ")
        if rest.startswith("{"):
            e = json.loads(rest)
            if e.get("role") == role:
                found.append(e)
    return found


@pytest.fixture(params=FLAVOURS)
def compose(request: pytest.FixtureRequest) -> str:
    """``docker compose`` (v2) and ``docker-compose`` (1.29), one test run each."""
    return compose_command(request.param)


def compose_up(compose: str, file: str) -> subprocess.CompletedProcess:
    base = compose.split() + ["-f", str(ROOT / file), "-p", unique_project()]
    try:
        return subprocess.run(base + ["up", "--no-color", "--exit-code-from", "reader"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=DEMO_DEADLINE_S, check=False)
    finally:
        subprocess.run(base + ["down", "-v", "--remove-orphans"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120, check=False)


def test_mmap_stack_reader_sees_the_writer(shmlab_image, compose):
    done = compose_up(compose, "compose/mmap.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    reads = [e for e in events(done.stdout, "mmap-reader") if e["event"] == "read"]
    assert len(reads) == 5 and all(e["ip"] == "127.0.0.1" for e in reads)
    counts = [e["count"] for e in reads]
    assert counts == sorted(set(counts)), counts


def test_isolated_stack_reader_gets_enoent(shmlab_image, compose):
    done = compose_up(compose, "compose/isolated.yml")
    assert done.returncode == 10, done.stdout + done.stderr  # the shmget exit code
    errors = [e for e in events(done.stdout, "sysv-reader") if e["event"] == "error"]
    assert errors and errors[0]["call"] == "shmget" and errors[0]["errno"] == "ENOENT"
