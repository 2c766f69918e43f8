"""The labctl image (``labctl build --self``) runs the library from inside a container
against the host's engine, writes its reports to a mounted directory, leaves nothing
behind, and a crash of the labctl container leaves a run that ``clean --stale`` removes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from labctl.images.library import NEEDS_C
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
SOCKET = "/var/run/docker.sock"
SUBSET = ["sysv-shareable", "sysv-create-trap", "mmap-volume", "mmap-bind-dir", "sysv-host"]
# The image carries no C toolchain: layouts read from C (header: / c:) are refused there
# (docs/ci.md), so the folders given to it leave those scenarios out, as its built-in
# library does.
NEEDS_CC = NEEDS_C


def drop_c_layouts(folder: Path) -> Path:
    """Remove the scenarios of ``folder`` whose layouts need a C preprocessor; returns it."""
    for f in folder.glob("*.yaml"):
        if NEEDS_CC.search(f.read_text()):
            f.unlink()
    return folder

pytestmark = [pytest.mark.slow,
              pytest.mark.alone("--allow-host-ipc inside the image; a SIGKILLed labctl leaves its run")]

LONG = """\
version: 1
name: held-for-a-crash
description: |
  A writer that runs until labctl dies, for the crash test.
timeout: 300s
containers:
  writer:
    workload: sysv-writer
    args: [--count, 0, --interval, 200ms, --quiet]
    ipc: shareable
checks:
  - segment: {in: writer, key: 1234, present: true}
    consistently: 200s
    timeout: 250s
"""


@pytest.fixture(scope="module")
def labctl_image(engine) -> str:
    from labctl.errors import LabctlError
    from labctl.images.selfimage import ensure_self_image

    problem = ""
    ref = None
    try:
        ref = ensure_self_image(engine)
    except LabctlError as e:
        problem = str(e)
    if problem:
        pytest.fail(f"labctl build --self failed: {problem}", pytrace=False)
    return str(ref)


def run_image(client: docker.DockerClient, image: str, args: list[str], volumes: dict, timeout: float = 600):
    """``docker run`` the labctl image with the engine socket; (exit code, stdout, stderr)."""
    c = client.containers.run(image, args, volumes={SOCKET: {"bind": SOCKET, "mode": "rw"}, **volumes},
                              detach=True)
    try:
        code = c.wait(timeout=timeout)["StatusCode"]
        return code, c.logs(stdout=True, stderr=False).decode(), c.logs(stdout=False, stderr=True).decode()
    finally:
        c.remove(force=True)


def test_the_image_runs_the_library_from_inside_a_container(labctl_image: str, docker_client, shmlab_image,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = ["run", "/scenarios", "--allow-host-ipc", "--format", "json", "--report", "junit:/out/junit.xml",
            *[a for name in SUBSET for a in ("-k", name)]]
    library = drop_c_layouts(Path(shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")))
    for f in library.glob("*.yaml"):  # -k matches substrings (mmap-bind-dir is in gvisor-mmap-bind-dir-shared)
        if f.stem not in SUBSET:
            f.unlink()
    code, stdout, stderr = run_image(docker_client, labctl_image, args, {
        str(library): {"bind": "/scenarios", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}})
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert {s["name"]: s["status"] for s in report["scenarios"]} == {n: "passed" for n in SUBSET}
    assert "<testsuite" in (out / "junit.xml").read_text()


def test_the_image_lists_its_built_in_library(labctl_image: str, docker_client) -> None:
    code, stdout, stderr = run_image(docker_client, labctl_image, ["list", "--format", "json"], {})
    assert code == 0, stderr
    assert {s["name"] for s in json.loads(stdout)} == {p.stem for p in (ROOT / "scenarios").glob("*.yaml")
                                                       if not NEEDS_C.search(p.read_text())}
    assert "built-in library" in stderr


def test_a_hostdir_outside_any_mount_is_refused_with_the_mount_to_add(labctl_image: str, docker_client,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    scenario = tmp_path / "lab" / "hostdir.yaml"
    scenario.write_text(LONG.replace("name: held-for-a-crash", "name: hostdir-refused")
                        .replace("timeout: 300s\n", "timeout: 30s\nvolumes:\n  fx: {type: hostdir, path: /etc}\n")
                        .replace("    ipc: shareable\n", "    ipc: shareable\n    volumes: ['fx:/fx:ro']\n"))
    code, stdout, stderr = run_image(docker_client, labctl_image, ["run", "--allow-host-paths", "/lab/hostdir.yaml"],
                                     {str(tmp_path / "lab"): {"bind": "/lab", "mode": "ro"}})
    assert code != 0
    assert "not visible to the engine" in stdout + stderr and "-v HOSTDIR:/etc" in stdout + stderr


def test_a_crashed_labctl_container_leaves_a_stale_run_that_clean_removes(labctl_image: str, docker_client,
                                                                          shmlab_image, tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "long.yaml").write_text(LONG)
    c = docker_client.containers.run(labctl_image, ["run", "/lab/long.yaml"], detach=True, volumes={
        SOCKET: {"bind": SOCKET, "mode": "rw"}, str(tmp_path / "lab"): {"bind": "/lab", "mode": "ro"}})
    try:
        def started() -> bool:
            return bool(docker_client.containers.list(filters={"label": f"io.labctl.container={c.id}"}))

        assert wait_until(started, 120, pause=0.3), c.logs().decode()
        c.kill()  # SIGKILL: no cleanup path runs
        c.wait(timeout=30)
        assert docker_client.containers.list(all=True, filters={"label": f"io.labctl.container={c.id}"})
    finally:
        c.remove(force=True)
    done = subprocess.run([sys.executable, "-m", "labctl", "clean", "--stale"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert not docker_client.containers.list(all=True, filters={"label": f"io.labctl.container={c.id}"})
    assert not docker_client.volumes.list(filters={"label": f"io.labctl.container={c.id}"})
