"""Test-suite wide configuration: marker plumbing shared by unit and integration tests."""

from __future__ import annotations

import os
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
