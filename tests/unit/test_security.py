"""Untrusted input through the real command line, with no engine: opt-ins, object-building
YAML tags, the bad-input corpus. Each case runs ``labctl`` as a subprocess, as a user would,
with ``DOCKER_HOST`` pointing nowhere: exit 2, not 3, shows the engine was never contacted.
(tests/integration/test_security_engine.py runs the cases that need the real engine.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import expected_errors

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "invalid"
NOWHERE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
MAX_RSS_KB = 200 * 1024  # under 200 MB per bad file
MAX_CPU_S = 2.0  # "within 2 s", as CPU time (wall time depends on the CI's load)


@dataclass(frozen=True)
class Measured:
    """One finished labctl process: exit code, output, and its own resource usage."""

    code: int
    stdout: str
    stderr: str
    max_rss_kb: int
    cpu_s: float


# Starts the command from a small process and writes its rusage (max RSS in KiB, CPU seconds)
# to argv[1]: a child forked straight from pytest would count pytest's own pages in ru_maxrss
# (hundreds of MB once the unit suite is loaded), not labctl's.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def labctl(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Measured:
    """Run ``python -m labctl ARGS`` and measure that process alone (os.wait4's rusage,
    taken by a small parent so pytest's memory is not counted)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as usage:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, usage.name, sys.executable, "-m", "labctl", *args],
                              cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})})
        max_rss_kb, cpu_s = usage.read().split()
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        int(max_rss_kb), float(cpu_s))


# ==== opt-ins: refused without the flag, named file; skipped with the reason, discovered ====

CONTAINER = "containers:\n  c:\n    workload: hold\n"
OPT_INS = {
    # case: (extra text, key path in the message, flag)
    "ipc-host": (CONTAINER + "    ipc: host\n", "containers.c.ipc", "--allow-host-ipc"),
    "hostdir-parent": ("volumes:\n  v: {type: hostdir, path: ../outside}\n" + CONTAINER + "    volumes: ['v:/v']\n",
                       "volumes.v.path", "--allow-host-paths"),
    "hostdir-absolute": ("volumes:\n  v: {type: hostdir, path: /etc}\n" + CONTAINER + "    volumes: ['v:/v']\n",
                         "volumes.v.path", "--allow-host-paths"),
    "privileged": (CONTAINER + "    privileged: true\n", "containers.c.privileged", "--allow-privileged"),
    "cap-add": (CONTAINER + "    cap_add: [SYS_ADMIN]\n", "containers.c.cap_add", "--allow-privileged"),
    "pid-host": (CONTAINER + "    pid: host\n", "containers.c.pid", "--allow-privileged"),
    "network-bridge": (CONTAINER + "    network: bridge\n", "containers.c.network", "--allow-privileged"),
    "devices": (CONTAINER + "    devices: [/dev/fuse]\n", "containers.c.devices", "--allow-privileged"),
}


def _opt_in_file(folder: Path, case: str) -> Path:
    body, _, _ = OPT_INS[case]
    f = folder / f"{case}.yaml"
    f.write_text(f"version: 1\nname: {case}\ndescription: needs an opt-in\n{body}"
                 "checks:\n  - exit: {container: c, code: 0}\n")
    return f


@pytest.fixture(scope="module")
def opt_in_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("untrusted") / "scenarios"
    folder.mkdir()
    for case in OPT_INS:
        _opt_in_file(folder, case)
    return folder


def test_named_files_needing_an_opt_in_are_refused_before_anything_starts(opt_in_folder: Path) -> None:
    files = [str(opt_in_folder / f"{case}.yaml") for case in OPT_INS]
    for command in ("run", "validate"):
        res = labctl(command, *files, env=NOWHERE)
        assert res.code == 2, (command, res.stderr)  # 2, not 3: the engine was never asked
        assert "Traceback" not in res.stderr
        for case, (_, key, flag) in OPT_INS.items():
            line = re.search(rf"^{re.escape(str(opt_in_folder / case))}\.yaml:(\d+):(\d+): {re.escape(key)}: "
                             rf"needs {re.escape(flag)} \(.*\); refused without it$", res.stderr, re.M)
            assert line, (command, case, res.stderr)


@pytest.mark.parametrize("case", sorted(OPT_INS))
def test_the_named_flag_is_what_allows_it(opt_in_folder: Path, case: str) -> None:
    _, _, flag = OPT_INS[case]
    res = labctl("validate", str(opt_in_folder / f"{case}.yaml"), flag)
    assert res.code == 0, res.stderr



# ==== YAML tags that would build objects never execute ====

PAYLOADS = {
    "object-apply-os-system": "containers: !!python/object/apply:os.system ['touch {m}']\n",
    "object-apply-subprocess": "name: !!python/object/apply:subprocess.check_call [[touch, '{m}']]\n",
    "object-new": "description: !!python/object/new:os.system ['touch {m}']\n",
    "object-apply-exec": "tags: [!!python/object/apply:builtins.exec [\"open('{m}', 'w')\"]]\n",
    "name-tag": "timeout: !!python/name:os.system\n",
    "module-tag": "volumes: !!python/module:os\n",
    "nested-in-args": ("containers:\n  c:\n    workload: hold\n    args: [!!python/object/apply:os.system ['touch {m}']]\n"),
}


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_python_object_tags_never_execute(tmp_path: Path, case: str) -> None:
    commands = ("validate", "run", "list", "compose")

    def one(command: str) -> tuple[Measured, Path]:
        # a folder (payload and marker) per command: the commands run two at a time
        marker = tmp_path / command / "PWNED"
        f = marker.parent / "payload.yaml"
        marker.parent.mkdir()
        f.write_text("version: 1\n" + PAYLOADS[case].format(m=marker) +
                     "checks:\n  - exit: {container: c, code: 0}\n")
        return labctl(command, str(f), env=NOWHERE), marker

    with ThreadPoolExecutor(max_workers=2) as pool:
        for command, (res, marker) in zip(commands, pool.map(one, commands)):
            assert res.code == 2, (command, res.stderr)
            assert "is not allowed (only plain values, lists and mappings)" in res.stderr, res.stderr
            assert "Traceback" not in res.stderr
            assert not marker.exists(), f"{command} executed the payload of {case}"


def test_no_unsafe_yaml_loader_in_the_package() -> None:
    # The loader is the one place YAML is read; nothing may bypass it with a constructor
    # that builds objects.
    for py in (ROOT / "labctl").rglob("*.py"):
        text = py.read_text()
        for bad in ("yaml.load(", "unsafe_load", "UnsafeLoader", "FullLoader", "full_load"):
            assert bad not in text, f"{py.relative_to(ROOT)} uses {bad}"


# ==== the bad-input corpus, through the CLI ====





EXPECTED = expected_errors()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The cases too big to keep in git: a multi-megabyte file and 10,000-deep nesting."""
    from labctl.scenario.yamlload import MAX_BYTES

    folder = tmp_path_factory.mktemp("generated")
    big = folder / "multi-megabyte.yaml"
    big.write_text("version: 1\nname: big\n" + "# a comment line that pads the file out\n" * 80_000)
    deep_map = folder / "deep-mapping.yaml"
    deep_map.write_text("version: 1\nname: deep\ntags: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n")
    deep_block = folder / "deep-block.yaml"
    deep_block.write_text("version: 1\nname: deep\ncontainers:\n" +
                          "".join("  " * (i + 1) + f"k{i}:\n" for i in range(3_000)) + "  " * 3_001 + "x: 1\n")
    assert big.stat().st_size > 3 * 1024 * 1024 > MAX_BYTES
    return {
        str(big): f"{big}: file is {big.stat().st_size} bytes; scenario files are limited to {MAX_BYTES} bytes",
        str(deep_map): f"{deep_map}:3:",
        str(deep_block): f"{deep_block}:",
    }


def test_corpus_is_large_and_covers_the_issue_list() -> None:
    names = set(EXPECTED)
    assert len(names) >= 30
    for needed in ("syntax-error", "tabs", "top-level-list", "empty", "binary", "latin1", "duplicate-key",
                   "unknown-top-key", "args-not-list", "negative-min", "huge-number", "unknown-ipc",
                   "missing-check-container", "after-cycle", "billion-laughs", "deep-nesting", "python-tag",
                   "mount-traversal", "mount-target-traversal"):
        assert f"{needed}.yaml" in names, needed


# The process-level contract (a `labctl validate` process exits 2, within its CPU and memory
# budget, measured by its rusage) for the files that stress it: the generated ones, the
# expansion bomb, the deepest nesting, a syntax error and bytes that are no text. Every file
# of the corpus goes through the same command line in this process (the CLI's main, as
# `python -m labctl` calls it), which checks the exit code, the located first line and the
# budget (CPU time of the call, peak Python allocation) without a new interpreter per file.
OWN_PROCESS = ("billion-laughs.yaml", "deep-nesting.yaml", "syntax-error.yaml", "binary.yaml")


def _check(name: str, res: Measured, first: str) -> list[str]:
    """What is wrong with one bad file's outcome: exit code, first line, traceback, budget."""
    problems = []
    first_line = res.stderr.splitlines()[0] if res.stderr else ""
    if res.code != 2:
        problems.append(f"{name}: exit {res.code}")
    if not first_line.startswith(first) or (first == EXPECTED.get(name) and first_line != first):
        problems.append(f"{name}: first line {first_line!r}, expected {first!r}")
    if "Traceback" in res.stderr:
        problems.append(f"{name}: traceback")
    if res.max_rss_kb > MAX_RSS_KB:
        problems.append(f"{name}: {res.max_rss_kb // 1024} MB")
    if res.cpu_s > MAX_CPU_S:
        problems.append(f"{name}: {res.cpu_s:.2f}s of CPU")
    return problems


def _in_process(name: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, memory: bool = True) -> Measured:
    """``labctl validate NAME`` through the CLI's main in this process, from ``cwd``: its
    exit code, output and CPU time (s); then, in a second traced call, its peak Python
    allocation (KiB) as the memory budget (0 without ``memory``: the files a process
    already measured, whose traced parse would only be slow)."""
    import contextlib
    import io
    import time
    import tracemalloc

    from labctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        m.chdir(cwd)
        for k, v in NOWHERE.items():
            m.setenv(k, v)
        cpu = time.process_time()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", name])
        cpu = time.process_time() - cpu
        peak = 0
        if memory:
            tracemalloc.start()  # a second call for the memory: tracing slows the first's CPU time down
        try:
            if memory:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    main(["validate", name])
                _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return Measured(code, out.getvalue(), err.getvalue(), peak // 1024, cpu)


def test_every_bad_file_exits_2_with_its_location_fast_and_small(generated: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [(name, INVALID, first) for name, first in EXPECTED.items()]
    cases += [(path, ROOT, first) for path, first in generated.items()]
    assert set(OWN_PROCESS) <= set(EXPECTED)

    def one(case: tuple[str, Path, str]) -> tuple[str, Measured, str]:
        name, cwd, first = case
        return name, labctl("validate", name, cwd=cwd, env=NOWHERE), first

    problems = []
    worst_rss = worst_cpu = 0.0
    processes = [c for c in cases if c[0] in OWN_PROCESS or c[0] in generated]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, res, first in pool.map(one, processes):
            worst_rss, worst_cpu = max(worst_rss, res.max_rss_kb), max(worst_cpu, res.cpu_s)
            problems += [f"process: {p}" for p in _check(name, res, first)]
    measured = {c[0] for c in processes}
    for name, cwd, first in cases:
        problems += _check(name, _in_process(name, cwd, monkeypatch, memory=name not in measured), first)
    _figure({"kind": "corpus", "files": len(cases), "processes": len(processes),
             "max_rss_mb": round(worst_rss / 1024, 1), "max_cpu_s": round(worst_cpu, 3)})
    assert not problems, "\n".join(problems)



def _figure(record: dict) -> None:
    path = os.environ.get("LABCTL_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
