"""The container engines labctl drives, by name, and where each one listens. No SDK import.

``labctl --engine NAME`` and a scenario's ``engines:`` take these names; the runtime
(``labctl.runtime.Engine.connect``) maps each to its implementation. Finding an engine's
address is plain file-system and environment work, so the CLI and the tests can say what to
start without connecting.
"""

from __future__ import annotations

import os
import stat

DOCKER = "docker"
PODMAN = "podman"
ENGINE_NAMES = (DOCKER, PODMAN)

DOCKER_DEFAULT = "unix:///var/run/docker.sock"
PODMAN_ROOTFUL = "/run/podman/podman.sock"


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def podman_rootless_socket() -> str:
    """``$XDG_RUNTIME_DIR/podman/podman.sock`` (``/run/user/UID`` when the variable is unset)."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.join(runtime_dir, "podman", "podman.sock")


def podman_candidates() -> list[str]:
    """The sockets Podman's API service listens on, in the order labctl tries them:
    ``$CONTAINER_HOST`` (Podman's own variable) if set, then rootful
    ``/run/podman/podman.sock`` for root or rootless ``$XDG_RUNTIME_DIR/podman/podman.sock``
    for other users, then the other one."""
    if os.environ.get("CONTAINER_HOST"):
        return [os.environ["CONTAINER_HOST"]]
    rootful, rootless = "unix://" + PODMAN_ROOTFUL, "unix://" + podman_rootless_socket()
    return [rootful, rootless] if os.geteuid() == 0 else [rootless, rootful]


def podman_address() -> str | None:
    """The first of ``podman_candidates()`` that exists (a unix socket, or a tcp/ssh URL
    taken as given); None when no Podman API service is listening."""
    for url in podman_candidates():
        if not url.startswith("unix://") or _is_socket(url[len("unix://"):]):
            return url
    return None


def podman_start_hint() -> str:
    """Exactly how to start Podman's API service for this user. From /tmp: conmon leaves
    an empty file ``oom`` in the service's working directory for each OOM-killed container."""
    if os.geteuid() == 0:
        return ("start Podman's API service: `systemctl start podman.socket`, or\n"
                f"  cd /tmp && podman system service --time=0 unix://{PODMAN_ROOTFUL} &\n"
                "(or point CONTAINER_HOST at a running one)")
    sock = podman_rootless_socket()
    return ("start Podman's rootless API service: `systemctl --user start podman.socket`, or\n"
            f"  cd /tmp && podman system service --time=0 unix://{sock} &\n"
            "(or point CONTAINER_HOST at a running one)")


def docker_address() -> str:
    """Where the Docker SDK connects: ``$DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or DOCKER_DEFAULT


def default_engine() -> str:
    """The engine used without ``--engine``/``LABCTL_ENGINE``: Podman when only
    ``CONTAINER_HOST`` (Podman's variable) is set, else Docker (``DOCKER_HOST``, which may
    point at Podman's compatible socket: ``Engine.connect`` recognises it by its version)."""
    if os.environ.get("CONTAINER_HOST") and not os.environ.get("DOCKER_HOST"):
        return PODMAN
    return DOCKER
