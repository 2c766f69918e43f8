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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration ``integration``, so ``-m "not integration"``
    selects exactly the tests that need no engine, without each file repeating the marker."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


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
