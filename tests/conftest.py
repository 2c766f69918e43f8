"""Test-suite wide configuration: marker plumbing shared by unit and integration tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIR = TESTS_DIR / "integration"
REPO_ROOT = TESTS_DIR.parent


# The tests that judge the session's one Docker library run (integration conftest's
# ``docker_library_run``), by file: test names, or "*" for the whole file. They are one xdist
# scope, so one worker runs them and the library runs once per session; the rest of each file
# goes by file, as any other (tests/unit/test_parallel_suite.py checks that every test asking
# for the run is here). test_run.py is whole: its Podman library run then starts once the
# Docker one is done (the two side by side, both building and starting at once, took half
# again as long as one after the other).
LIBRARY_TESTS = {
    "tests/integration/test_first_contact.py": {"test_the_library_with_emulation_hidden_skips_arm64_and_exits_0"},
    "tests/integration/test_library.py": {"*"},
    "tests/integration/test_pytest_plugin.py": {"test_the_library_as_pytest_items"},
    "tests/integration/test_run.py": {"*"},
}
LIBRARY_SCOPE = "docker-library"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration ``integration``, so ``-m "not integration"``
    selects exactly the tests that need no engine, without each file repeating the marker.

    The library's tests go first (each file's tests keep their order; ``--no-loadscope-reorder``
    keeps this order): together the longest unit of work, it starts while the other workers
    take the rest."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: xdist_scope(item.nodeid) != LIBRARY_SCOPE)  # stable: the rest keep their order


def xdist_scope(nodeid: str) -> str:
    """The unit of work one xdist worker takes whole: the test's file (its module fixtures,
    such as the Podman library run, are made once), or ``docker-library`` for LIBRARY_TESTS."""
    file, _, name = nodeid.partition("::")
    wanted = LIBRARY_TESTS.get(file, ())
    if "*" in wanted or name.split("[", 1)[0] in wanted:
        return LIBRARY_SCOPE
    return file


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` (pyproject.toml) with the library files as one scope (``xdist_scope``)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByFileWithTheLibraryTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return ByFileWithTheLibraryTogether(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, share the integration tests' run-alone lock with the session's
    other workers (tests/integration/alone.py)."""
    from tests.integration import alone

    if hasattr(config, "workerinput"):  # xdist gives each worker <the session's base temp>/<worker id>
        alone.configure(Path(config.option.basetemp).parent)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, pyproject.toml): one worker per CPU this process may use, plus
    one when integration tests are selected, at most 4 (they share one engine);
    PYTEST_XDIST_AUTO_NUM_WORKERS overrides it, ``-n 0`` runs everything in this process.

    The integration tests spend much of their time waiting on the engine: with one worker per
    CPU, two cores were ~60 % busy through the middle of a CI run; a third worker fills that.
    The engine-free tests (``-m "not integration"``) only compute: one worker per CPU."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if forced.isdigit():
        return int(forced)
    cpus = len(os.sched_getaffinity(0))
    waiting = "not integration" not in (config.getoption("markexpr", "") or "")
    return max(1, min(cpus + waiting, 4))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show which engine the integration tests talk to."""
    return [f"docker engine: {os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}"]


# Caches the tools write into the checkout's root (all in .gitignore).
ROOT_CACHES = {".pytest_cache", ".hypothesis", "__pycache__", ".coverage"}


def _git_ignored(names: set[str]) -> set[str]:
    """The ``names`` (entries of the checkout's root) that git ignores; none outside a git checkout."""
    try:
        proc = subprocess.run(["git", "check-ignore", "--stdin"], input="\n".join(sorted(names)), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(proc.stdout.split()) if proc.returncode in (0, 1) else set()


@pytest.fixture(scope="session", autouse=True)
def checkout_root_unchanged() -> Iterator[None]:
    """Tests write only under their own temporary folders: the checkout's root gains no entry
    during the session (e.g. an empty ``oom`` there came from conmon, which writes one into
    the Podman service's working directory for every OOM-killed container when that
    service was started from the checkout). Ignored: what git ignores, and tool caches."""
    before = set(os.listdir(REPO_ROOT))
    yield
    new = set(os.listdir(REPO_ROOT)) - before - ROOT_CACHES
    new -= _git_ignored(new) if new else set()
    if new:
        pytest.fail(f"the tests left new entries in the checkout's root {REPO_ROOT}: {', '.join(sorted(new))}",
                    pytrace=False)
