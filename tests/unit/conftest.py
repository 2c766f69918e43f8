"""Fixtures shared by unit test files."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SHMLAB_SOURCES = Path(__file__).resolve().parents[2] / "images" / "shmlab"


@pytest.fixture(scope="session")
def zig_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for this process's compile-only ``zig cc`` runs: zig's global and
    local caches in this session's temporary folder (under xdist, this worker's). zig
    invocations that share a cache race on it when they start cold together (zig's issues
    9439 and 18989: a half-written cache file fails a compile), as the suite's workers would;
    within one worker the cache is warm after the first compile for each target."""
    base = tmp_path_factory.getbasetemp() / "zig"
    return {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(base / "global"), "ZIG_LOCAL_CACHE_DIR": str(base / "local")}


@dataclass(frozen=True)
class HostBuild:
    """shmlab compiled once per session by the host's C compiler with ``labctl build``'s flags:
    the compiler used (None: there is none), the finished compile and the binary."""

    compiler: str | None
    proc: subprocess.CompletedProcess | None
    binary: Path


@pytest.fixture(scope="session")
def host_shmlab(tmp_path_factory: pytest.TempPathFactory) -> HostBuild:
    """One host compile shared by test_build.py (zero warnings) and test_units.py (runs it).
    No -Werror: a warning still fails test_build.py's check (it asserts an empty stderr),
    and the tests that only run the binary do not depend on the compiler's warnings."""
    from labctl.images import build

    out = tmp_path_factory.mktemp("host-shmlab") / "shmlab"
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return HostBuild(None, None, out)
    cmd = [compiler, *build.CFLAGS, "-o", str(out), *sorted(str(p) for p in SHMLAB_SOURCES.glob("*.c"))]
    return HostBuild(compiler, subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300), out)
