"""The suite on several pytest-xdist workers: what one worker takes whole (tests/conftest.py's
``xdist_scope``), and the integration tests' run-alone lock (tests/integration/alone.py)
across processes, as workers hold it: an ``alone`` holder keeps shared holders out, shared
holders keep it waiting, and a waiting ``alone`` request keeps later shared ones out (no
starvation)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LIBRARY_SCOPE, LIBRARY_TESTS, xdist_scope
from tests.helpers import wait_until
from tests.integration import alone

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from pathlib import Path
from tests.integration import alone
alone.configure(Path(sys.argv[1]))
with alone.hold(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    """A session of its own (this process may be a worker of the real one: restored after)."""
    before = alone._lock_dir  # noqa: SLF001
    alone.configure(tmp_path)
    yield str(tmp_path)
    alone.configure(before)


def holder(folder: str, mode: str) -> subprocess.Popen:
    """Another worker holding the lock in ``mode`` until its stdin gets a line."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, folder, mode], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def free(folder: str, name: str, op: int) -> bool:
    """Whether ``op`` (LOCK_SH or LOCK_EX) on the session's ``name`` file would be granted now."""
    fd = os.open(Path(folder) / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_an_alone_holder_keeps_shared_holders_out(session: str) -> None:
    other = holder(session, "alone")
    try:
        assert not free(session, "main", fcntl.LOCK_SH)
    finally:
        release(other)
    assert free(session, "main", fcntl.LOCK_SH)


def test_shared_holders_hold_together_and_keep_alone_out(session: str) -> None:
    first, second = holder(session, "shared"), holder(session, "shared")  # both got it
    try:
        assert not free(session, "main", fcntl.LOCK_EX)
    finally:
        release(first)
        release(second)
    assert free(session, "main", fcntl.LOCK_EX)


def test_a_waiting_alone_request_keeps_later_shared_ones_out(session: str) -> None:
    reader = holder(session, "shared")
    got = threading.Event()

    def want_alone() -> None:
        with alone.hold("alone"):
            got.set()

    waiter = threading.Thread(target=want_alone)
    waiter.start()
    try:
        # the waiter holds the turnstile while it waits for the reader: a new reader queues
        assert wait_until(lambda: not free(session, "turnstile", fcntl.LOCK_EX), 10.0), \
            "the alone request never took the turnstile"
        assert not got.is_set() and not free(session, "main", fcntl.LOCK_EX)
    finally:
        release(reader)
        waiter.join(timeout=30)
    assert got.is_set()


def test_alone_inside_shared_is_refused_and_nesting_otherwise_is_a_no_op(session: str) -> None:
    with alone.hold("shared"):
        with alone.hold("shared"):
            pass
        with pytest.raises(RuntimeError, match="mark the test `alone`"):
            with alone.hold("alone"):
                pass
    with alone.hold("alone"):
        with alone.hold("shared"):
            assert alone._held == "alone"  # noqa: SLF001
    with pytest.raises(ValueError):
        with alone.hold("exclusive"):
            pass


def _asking_for_the_library_run() -> list[str]:
    """The node ids (the docker one where the engine is a parameter) of every integration test
    that takes ``docker_library_run``, or test_run.py's ``library_run`` made from it."""
    import ast

    found = []
    for path in sorted((ROOT / "tests/integration").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                args = {a.arg for a in node.args.args}
                if "docker_library_run" in args or "library_run" in args:
                    param = "[docker]" if "library_run" in args else ""
                    found.append(f"tests/integration/{path.name}::{node.name}{param}")
    return found


def test_every_test_that_judges_the_docker_library_run_is_in_its_one_scope() -> None:
    asking = _asking_for_the_library_run()
    assert len(asking) >= 6 and {a.split("::")[0] for a in asking} == set(LIBRARY_TESTS)
    # a test that asks for the run and is not in the scope would run the library again
    assert [a for a in asking if xdist_scope(a) != LIBRARY_SCOPE] == []
    # the rest of those files go by file: the pytest plugin's other runs and the README's
    # container example are units of their own, on whichever worker is free
    assert xdist_scope("tests/integration/test_pytest_plugin.py::test_failure_report_and_junit") \
        == "tests/integration/test_pytest_plugin.py"
    assert xdist_scope("tests/integration/test_first_contact.py::test_the_readme_container_example_passes_literally") \
        == "tests/integration/test_first_contact.py"
    assert xdist_scope("tests/integration/test_run.py::test_env_variables_set_flags") == LIBRARY_SCOPE
    assert xdist_scope("tests/unit/test_units.py::test_a") == xdist_scope("tests/unit/test_units.py::test_b[1]") \
        == "tests/unit/test_units.py"
    # the scheduler hook overrides this method of xdist's: renamed in a later xdist, the library
    # would run on two workers without a word, so it fails here instead
    from xdist.scheduler import LoadFileScheduling

    assert callable(getattr(LoadFileScheduling, "_split_scope", None))


def test_a_kept_alone_lock_stays_held_until_a_shared_hold_or_give_back(session: str) -> None:
    try:
        with alone.hold("alone", keep=True):
            pass
        assert not free(session, "main", fcntl.LOCK_SH)  # kept: other workers still wait
        with alone.hold("alone", keep=True):  # taken over: no second acquire (it would not block here either way)
            assert not free(session, "main", fcntl.LOCK_SH)
        assert not free(session, "main", fcntl.LOCK_SH)
        with alone.hold("shared"):  # a shared test gives the kept lock back before taking its own
            assert free(session, "main", fcntl.LOCK_SH) and not free(session, "main", fcntl.LOCK_EX)
        assert free(session, "main", fcntl.LOCK_EX)
        with alone.hold("alone", keep=True):
            pass
        alone.give_back()
        assert free(session, "main", fcntl.LOCK_EX)
        with alone.hold("alone"):  # not kept: given back at the end
            pass
        assert free(session, "main", fcntl.LOCK_EX)
    finally:
        alone.give_back()
