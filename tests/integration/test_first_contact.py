"""First contact, as a newcomer meets it: the library folder on a machine without
emulation (binfmt_misc hidden through ``LABCTL_BINFMT_DIR``: the host's stays as it is,
other runs use it) exits 0 with the arm64 scenario skipped, its reason and its fix; and
the README's container example, copied literally from README.md, runs a folder laid out as
``scenarios/`` (its ``include/`` and the part of the library that covers what can differ
inside the image: ``image_cover``) in the labctl image, exits 0 and writes its JUnit report."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import covering_subset, library_in_image_constructs, what_failed

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# What the test below asserts by name: a layout precomputed in the folder (the image has no
# preprocessor), a plain pair, and a scenario the image skips for want of a compiler.
IMAGE_NAMED = ("own-image-layout", "sysv-shareable", "mixed-width-long")


def image_cover() -> list[Path]:
    """The library files the in-image run takes: the cover of every need, check kind, step
    action, storage kind, IPC mode and restart policy of the library
    (``library_in_image_constructs``), plus ``IMAGE_NAMED``. Every scenario itself runs on the
    host in the Docker, Podman and linux/arm64 library runs; what the image adds is labctl
    reading the engine and the host from a container."""
    library = sorted((ROOT / "scenarios").glob("*.yaml"))
    cover = set(covering_subset(library_in_image_constructs(library)))
    return sorted({Path(p) for p in cover} | {ROOT / "scenarios" / f"{n}.yaml" for n in IMAGE_NAMED})


def readme_container_command() -> str:
    """The README's ``docker run ... labctl/labctl run /scenarios --report junit:...`` line,
    its backslash continuations joined, exactly as a reader would paste it."""
    text = (ROOT / "README.md").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in joined.splitlines()
             if ln.strip().startswith("docker run") and '-v "$PWD/scenarios:/scenarios:ro"' in ln
             and "labctl/labctl run /scenarios --report junit:/reports/junit.xml" in ln]
    assert len(lines) == 1, f"README.md should hold the container example once, found {lines}"
    return lines[0]


def test_the_library_with_emulation_hidden_skips_arm64_and_exits_0(docker_library_run) -> None:
    """The session's Docker library run (``docker_library_run``: no ``LABCTL_*`` setting, no
    ``--allow-*`` flag, binfmt_misc hidden) is that machine: the host-IPC scenario is skipped
    with the flag to give as well (test_run.py's
    test_opt_in_scenario_in_a_folder_is_skipped_with_the_reason), and runs with it in
    test_run.py's test_the_host_ipc_scenarios_pass_given_the_flag."""
    proc = docker_library_run.proc
    assert proc.returncode == 0, what_failed(proc)
    doc = json.loads(proc.stdout)
    by_name = {s["name"]: s for s in doc["scenarios"]}
    arm = by_name["arm64-amd64-shared"]
    assert arm["status"] == "skipped"
    assert arm["message"].startswith("needs linux/arm64 emulation (linux/arm64 needs emulation on this")
    assert "to enable: apt-get install -y qemu-user-static" in arm["message"]
    assert doc["summary"]["skipped_by_reason"]["needs linux/arm64 emulation"] == 1
    assert doc["summary"]["failed"] == 0 and doc["summary"]["errors"] == 0
    assert "SKIP arm64-amd64-shared: needs linux/arm64 emulation" in proc.stderr


@pytest.fixture(scope="module")
def labctl_image(engine) -> str:
    from labctl.errors import LabctlError
    from labctl.images.selfimage import ensure_self_image

    try:
        return str(ensure_self_image(engine))
    except LabctlError as e:
        pytest.fail(f"labctl build --self failed: {e}", pytrace=False)


def test_the_readme_container_example_passes_literally(tmp_path: Path, labctl_image: str, shmlab_image: str) -> None:
    command = readme_container_command()
    work = tmp_path / "ci"
    work.mkdir()
    # the folder as a CI job has it (include/ and all), holding the cover's scenarios
    shutil.copytree(ROOT / "scenarios", work / "scenarios", ignore=shutil.ignore_patterns("*.yaml"))
    cover = image_cover()
    for path in cover:
        shutil.copy(path, work / "scenarios" / path.name)
    (work / "reports").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    proc = subprocess.run(["sh", "-c", command], cwd=work, env={**env, "PWD": str(work)}, capture_output=True,
                          text=True, timeout=1800, check=False)
    suite = ET.parse(work / "reports" / "junit.xml").getroot()
    bad = [f"{c.get('name')}: {e.get('message')}\n{(e.text or '')[:1500]}" for c in suite.iter("testcase")
           for e in c if e.tag in ("failure", "error")]
    assert proc.returncode == 0, f"$ {command}\n" + "\n".join(bad) + proc.stderr[-3000:]
    cases = suite.findall(".//testcase")
    assert sorted(c.get("name") for c in cases) == sorted(p.stem for p in cover)
    assert not suite.findall(".//failure") and not suite.findall(".//error")
    ran = {c.get("name") for c in cases if c.find("skipped") is None}
    # the header layout comes precomputed with the folder; what needs a compiler (other
    # platforms' workloads, example programs) is skipped in the image, with the reason
    assert {"own-image-layout", "sysv-shareable"} <= ran, ran
    skipped = {c.get("name"): c.find("skipped").get("message") for c in cases if c.find("skipped") is not None}
    assert skipped["mixed-width-long"].startswith("needs a C compiler"), skipped
