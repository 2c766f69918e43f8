"""One size grammar and one duration grammar: labctl's (labctl.units) and every shmlab command's
(images/shmlab/units.c, read through `shmlab units`) take the same strings to the same values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labctl import units
from labctl.bench.records import parse_size as bench_size
from labctl.errors import UsageError
from labctl.runtime.podman_engine import tmpfs_options

SOURCES = Path(__file__).resolve().parents[2] / "images" / "shmlab"
DURATIONS = ["1m", "1.5m", "2s", "2.5s", "100ms", "0.25ms", "1h", " 3 s ", "0", "250 ms",
             "1e3", "-1s", "1.s", ".5s", "1d", "1 m s", "s", "", "1mx"]
SIZES = ["1m", "1M", "4k", "64KiB", "64kb", "64ki", "1g", "1GB", "7b", "68", " 16 m ",
         "1.5k", "-1", "1t", "k", "", "0x10", "1mbx"]


@pytest.fixture(scope="module")
def shmlab(host_shmlab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shmlab compiled for this machine from the image's sources (the same files `labctl build`
    compiles): the session's host compile with the build's flags (tests/unit/conftest.py), or,
    where those fail (no static libc), a plain dynamic compile."""
    if host_shmlab.compiler is None:
        pytest.skip("no C compiler on this machine")
    if host_shmlab.proc.returncode == 0:
        return host_shmlab.binary
    out = tmp_path_factory.mktemp("shmlab") / "shmlab"
    subprocess.run([host_shmlab.compiler, "-std=c11", "-O1", "-D_GNU_SOURCE", "-o", str(out),
                    *sorted(map(str, SOURCES.glob("*.c")))], check=True, timeout=300)
    return out


def _c(shmlab: Path, kind: str, values: list[str]) -> list[int | None]:
    run = subprocess.run([str(shmlab), "units", kind, *values], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["event"] for e in events] == ["units"] * len(values)
    return [e["value"] for e in events]


def _py(parse, value: str) -> float | None:
    try:
        return parse(value)
    except ValueError:
        return None


def test_durations_mean_the_same_in_python_and_in_shmlab(shmlab: Path) -> None:
    c = _c(shmlab, "duration", DURATIONS)
    py = [_py(units.parse_duration, d) for d in DURATIONS]
    for text, seconds, ms in zip(DURATIONS, py, c):
        assert (seconds is None) == (ms is None), text
        if seconds is None or not text.strip()[-1].isalpha():
            continue  # a bare number: seconds in a scenario file, milliseconds to shmlab
        assert ms == int(seconds * 1000 + 0.5), text  # milliseconds, rounded half up
    assert c[0] == 60_000  # 1m is a minute, never a MiB
    assert _c(shmlab, "duration", ["1500", "0"]) == [1500, 0]


def test_sizes_mean_the_same_in_python_and_in_shmlab(shmlab: Path) -> None:
    assert _c(shmlab, "size", SIZES) == [_py(units.parse_size, s) for s in SIZES]
    assert _c(shmlab, "size", ["1m"]) == [1 << 20]


def test_shmlab_bench_reads_its_timeout_as_a_duration_and_its_size_as_a_size(shmlab: Path) -> None:
    # `--role memcpy` needs no peer; a timeout of 1m must not read as 1 MiB milliseconds
    run = subprocess.run([str(shmlab), "bench", "--role", "memcpy", "--mech", "memcpy", "--size", "1k",
                          "--iters", "10", "--warmup", "1", "--timeout", "1m"],
                         capture_output=True, text=True, timeout=60)
    bad = subprocess.run([str(shmlab), "bench", "--role", "memcpy", "--mech", "memcpy", "--timeout", "1x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[1])["size"] == 1024


def test_the_bench_and_podman_sizes_are_the_one_grammar() -> None:
    assert bench_size("4k") == units.parse_size("4k") == 4096 and bench_size("1MiB") == 1 << 20
    with pytest.raises(UsageError):
        bench_size("1x")
    with pytest.raises(UsageError):
        bench_size("1g")  # out of range for a message
    assert tmpfs_options("mode=1777,size=16m", 4096) == "mode=1777,nr_blocks=4096"
    assert tmpfs_options("size=16MiB", 4096) == "nr_blocks=4096"
    assert tmpfs_options("size=lots", 4096) == "size=lots"
