"""The CLI as a user runs it (``python -m labctl``, a process), where it must not need an
engine: bad input exits 2 before anything starts, an unreachable engine exits 3 naming it,
``validate`` never asks the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def labctl(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the CLI from the repository root; ``env`` is added to the environment."""
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_malformed_file_exits_2_and_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\ndescription: d\ncontainers:\n  w:\n    workload: sysv-writer\n    ipc: sharable\n"
                   "checks:\n  - exit: {container: w, code: 0}\n")
    proc = labctl("run", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:7:" in proc.stderr and "containers.w.ipc" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_engine_exits_3_naming_it(tmp_path):
    proc = labctl("run", "scenarios", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 3, proc.stderr
    assert "unix:///nonexistent.sock" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_never_contacts_the_engine():
    proc = labctl("validate", "scenarios", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 0, proc.stderr


def test_podman_without_its_socket_exits_3_saying_how_to_start_it(tmp_path):
    proc = labctl("run", "scenarios/sysv-shareable.yaml", "--engine", "podman",
                  env={"CONTAINER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert proc.returncode == 3, proc.stderr
    assert "podman system service --time=0" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_mechanism_is_a_usage_error() -> None:
    proc = labctl("bench", "--mechanisms", "carrier-pigeon", timeout=60)
    assert proc.returncode == 2
    assert "unknown mechanism 'carrier-pigeon'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
