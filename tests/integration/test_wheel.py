"""The wheel works outside the checkout: built, installed into a fresh venv, run from an
empty directory (built-in library, workload image from the packaged sources)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABCTL_", "PYTHON"))}
    env["LABCTL_QUIET"] = "0"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``labctl`` script of a fresh venv holding only the wheel and its dependencies."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                   check=True, timeout=600, stdin=subprocess.DEVNULL)
    wheels = list(dist.glob("labctl-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(base / "venv", with_pip=True)
    py = base / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], check=True, timeout=900,
                   stdin=subprocess.DEVNULL)
    return base / "venv" / "bin" / "labctl"


def run(script: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def test_list_uses_the_packaged_library_and_says_so(installed: Path, tmp_path: Path) -> None:
    done = run(installed, "list", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = {s["name"] for s in json.loads(done.stdout)}
    assert {p.stem for p in (ROOT / "scenarios").glob("*.yaml")} == names
    files = {s["file"] for s in json.loads(done.stdout)}
    assert all("site-packages/labctl/_data/scenarios/" in f for f in files), files  # not the checkout's
    assert "built-in library" in done.stderr


def test_build_uses_the_packaged_sources(installed: Path, tmp_path: Path, shmlab_image: str) -> None:
    done = run(installed, "build", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # same bytes as the checkout's sources: the same content-hashed image
    assert done.stdout.strip() == shmlab_image


def test_run_from_an_empty_directory_passes(installed: Path, tmp_path: Path, shmlab_image: str) -> None:
    done = run(installed, "run", "-k", "sysv-shareable", "-k", "mmap-volume", "--format", "json",
               "--report", "junit:out/junit.xml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["passed"] == 2 and report["summary"]["failed"] == 0
    assert (tmp_path / "out" / "junit.xml").is_file()


def test_init_copies_a_starting_point_that_runs(installed: Path, tmp_path: Path, shmlab_image: str) -> None:
    done = run(installed, "init", "scenarios", "sysv-shareable", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "scenarios").iterdir()) == ["scenario.schema.json", "sysv-shareable.yaml"]
    listed = run(installed, "list", cwd=tmp_path)
    assert listed.returncode == 0 and "./scenarios" in listed.stderr
    assert listed.stdout.split()[0] == "sysv-shareable"
    again = run(installed, "init", "scenarios", "sysv-shareable", cwd=tmp_path)
    assert again.returncode == 2 and "already exist" in again.stderr
