"""Where Podman's API service runs from: conmon writes an empty file ``oom`` into the
service's working directory for every OOM-killed container (the library has one), so a
service started from the checkout (as .ci/run once did) litters it."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _podman_services() -> dict[int, Path]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            if b"podman" in Path(argv[0].decode()).name.encode() and argv[1:3] == [b"system", b"service"]:
                found[int(entry.name)] = Path(os.readlink(f"/proc/{entry.name}/cwd"))
        except (OSError, IndexError, UnicodeDecodeError):
            continue
    return found


def test_the_podman_service_does_not_run_in_the_checkout(podman_client) -> None:
    inside = {pid: str(cwd) for pid, cwd in _podman_services().items() if cwd == ROOT or ROOT in cwd.parents}
    assert not inside, f"Podman's API service runs from the checkout (conmon writes `oom` there): {inside}"


def test_the_start_hint_starts_it_elsewhere() -> None:
    from labctl.runtime.lookup import podman_start_hint

    assert "cd /tmp && podman system service" in podman_start_hint()
    ci = (ROOT / ".ci" / "run").read_text()
    assert '(cd "$PODMAN_CWD" && exec setsid podman system service' in ci
