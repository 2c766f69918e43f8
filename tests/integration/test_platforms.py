"""The library on other platforms, on the real engine: ``labctl run --platform P``.

linux/arm64 runs under qemu on an x86_64 machine (``.ci/run`` registers it in binfmt_misc
with the F flag); if the emulation is missing, labctl exits 3 and this test FAILS with
labctl's install steps: it never skips. The engine's own platform is covered by
``test_run.py``; linux/386 containers run in mixed-width-* on every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import what_failed

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ["linux/arm64"]


@pytest.mark.slow
@pytest.mark.parametrize("platform", PLATFORMS)
def test_library_passes_on(platform: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", "--platform", platform, "--jobs", "2",
                           "--format", "json"], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=1200, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, what_failed(proc)
    report = json.loads(proc.stdout)
    statuses = {s["name"]: s["status"] for s in report["scenarios"]}
    assert set(statuses.values()) <= {"passed", "skipped"}, statuses
    assert sum(v == "passed" for v in statuses.values()) >= 30
    assert statuses.get("arm64-amd64-shared") == "passed"
