"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

INVALID = Path(__file__).resolve().parent / "data" / "invalid"
CI_DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def wait_until(predicate: Callable[[], bool], timeout: float, clock: Callable[[], float] = time.monotonic,
               pause: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed (a bounded wait on state,
    not a sleep standing in for an event); returns its last value."""
    deadline = clock() + timeout
    while True:
        if predicate():
            return True
        if clock() >= deadline:
            return False
        time.sleep(pause)


def expected_errors() -> dict[str, str]:
    """tests/data/invalid/expected.txt: invalid fixture name -> its exact first error line."""
    out = {}
    for line in (INVALID / "expected.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, first = line.split("\t", 1)
            out[name] = first
    return out


def ci_recipes() -> dict[str, tuple[str, str]]:
    """docs/ci.md's ``# recipe: NAME`` fenced blocks -> (language, text)."""
    found = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", CI_DOC.read_text(), re.S):
        m = re.match(r"# recipe: (\S+)\n", body)
        if m:
            found[m.group(1)] = (lang, body)
    return found


# The rootless Podman the integration tests run on: .ci/run creates this system user, gives it
# subuid/subgid ranges and starts its API service at /run/user/UID/podman/podman.sock.
ROOTLESS_USER = "labctl-rootless"


def rootless_podman() -> str | None:
    """The ``unix://`` URL of the rootless Podman API socket of ``ROOTLESS_USER`` (whether
    or not a service listens there), or ``$LABCTL_TEST_ROOTLESS_HOST`` when set; None when
    that user does not exist."""
    import os
    import pwd

    if os.environ.get("LABCTL_TEST_ROOTLESS_HOST"):
        return os.environ["LABCTL_TEST_ROOTLESS_HOST"]
    try:
        uid = pwd.getpwnam(ROOTLESS_USER).pw_uid
    except KeyError:
        return None
    return f"unix:///run/user/{uid}/podman/podman.sock"
