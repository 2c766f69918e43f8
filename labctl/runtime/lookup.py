"""The container engines labctl drives, by name, and where each one listens. No SDK import.

``labctl --engine NAME`` and a scenario's ``engines:`` take these names; the runtime
(``labctl.runtime.Engine.connect``) maps each to its implementation. Finding an engine's
address is plain file-system and environment work, so the CLI and the tests can say what to
start without connecting.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
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


def rootless_owner(address: str) -> int | None:
    """The uid of the user whose rootless Podman service listens at ``address`` (a
    ``unix://`` URL): the socket's owner when it exists and is not root, else ``N`` of a
    ``/run/user/N/`` path; None for a rootful socket or a remote (tcp/ssh) address."""
    if not address.startswith("unix://"):
        return None
    path = address[len("unix://"):]
    try:
        owner = os.stat(path).st_uid
    except OSError:
        owner = None
    if owner:
        return owner
    m = re.match(r"^/run/user/(\d+)/", path)
    return int(m.group(1)) if m and owner is None and int(m.group(1)) != 0 else None


def user_name(uid: int) -> str:
    """The login name of ``uid`` (``USER`` when this host has none: the commands then need one)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "USER"


def as_rootless_user(address: str, command: str) -> str:
    """``command`` (a shell line) as root runs it for the rootless service at ``address``:
    as its user, with that user's ``XDG_RUNTIME_DIR``, from /tmp (conmon leaves an empty
    file ``oom`` in the service's working directory for each OOM-killed container).
    ``command`` unchanged, from /tmp, when this process is that user already."""
    uid = rootless_owner(address)
    line = f"cd /tmp && exec {command}"
    if uid is None or uid == os.geteuid():
        return line
    runtime_dir = os.path.dirname(os.path.dirname(address[len("unix://"):]))
    return f"runuser -u {user_name(uid)} -- env XDG_RUNTIME_DIR={runtime_dir} sh -c {shlex.quote(line)}"


def podman_start_hint(address: str | None = None) -> str:
    """Exactly how to start Podman's API service at ``address`` (None: the one this user
    would use). From /tmp: conmon leaves an empty file ``oom`` in the service's working
    directory for each OOM-killed container. A rootless user's socket (``/run/user/UID/``)
    is started as that user, also when labctl runs as root."""
    if address is None:
        address = "unix://" + (PODMAN_ROOTFUL if os.geteuid() == 0 else podman_rootless_socket())
    uid = rootless_owner(address)
    if uid is None and address == "unix://" + PODMAN_ROOTFUL:
        return ("start Podman's API service: `systemctl start podman.socket`, or\n"
                f"  cd /tmp && podman system service --time=0 {address} &\n"
                "(or point CONTAINER_HOST at a running one)")
    if uid is None:
        return (f"start a Podman API service there: `podman system service --time=0 {address} &` on its host\n"
                "(or point CONTAINER_HOST at a running one)")
    if uid == os.geteuid():
        return ("start Podman's rootless API service: `systemctl --user start podman.socket`, or\n"
                f"  cd /tmp && podman system service --time=0 {address} &\n"
                "(or point CONTAINER_HOST at a running one)")
    user = user_name(uid)
    runtime_dir = os.path.dirname(os.path.dirname(address[len("unix://"):]))
    return (f"start the rootless API service of {user} (uid {uid}) as that user, with its runtime directory:\n"
            f"  install -d -m 0700 -o {uid} -g {uid} {runtime_dir} {runtime_dir}/podman\n"
            f"  {as_rootless_user(address, f'podman system service --time=0 {address}')} &\n"
            f"({user} needs subuid/subgid ranges and newuidmap from the uidmap package: docs/setup.md, "
            "'Rootless Podman'; .ci/run sets all of it up for labctl-rootless)")


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
