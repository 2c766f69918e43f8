"""OCI runtimes (``runtime:`` of a container, ``labctl run --runtime``): which ones labctl
knows, which of them sandbox their containers behind a kernel of their own, and whether
one is available on an engine, with the reason and the fix when it is not.

No engine library is imported here: ``availability`` takes what the engine reported
(``Engine.oci_runtimes()``), so it can be judged by a unit test, by the run's skip/refuse
path and by any other "requirement" check alike.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

# name -> one line for the schema and the handout
RUNTIMES: dict[str, str] = {
    "runc": "the reference runtime (Docker's and Debian Podman's default): namespaces of the host kernel",
    "crun": "a runtime in C, namespaces of the host kernel (Podman's default where installed)",
    "runsc": "gVisor: each container is a sandbox with a kernel of its own (System V IPC is the sandbox's; "
             "host mounts such as a joined /dev/shm or a bind-mounted directory pass through)",
}

# Runtimes whose containers each run on a kernel of their own (one sandbox per container on
# Docker and Podman): what the programs see of IPC is only visible from inside the sandbox.
SANDBOXED = frozenset({"runsc"})

# The socket of a Podman API service whose default runtime is NAME: Podman 4's API ignores a
# container's runtime (HostConfig.Runtime and the libpod oci_runtime field), so a container on
# another runtime than the service's default is created through a service started with
# ``podman --runtime NAME system service``. That service sits beside the engine's own socket
# (``podman_runtime_socket``): a rootless user's is ``/run/user/UID/podman/podman-NAME.sock``.
PODMAN_RUNTIME_SOCKET = "/run/podman/podman-{name}.sock"

CGROUP_ROOT = Path("/sys/fs/cgroup")

# What each runtime needs on this kind of host, for the fix texts.
_RUNSC_ARGS = '"runtimeArgs": ["--network=none"]'
# Each is a command a shell runs as given (the fix's "to enable" steps): notes are comments.
_INSTALL = {
    "runc": "apt-get install -y runc",
    "crun": "apt-get install -y crun  # only where the host's cgroups allow it: on hybrid cgroups crun fails every "
            "container with 'cgroups in hybrid mode not supported', and Podman then picks it as its default",
    "runsc": "apt-get install -y runsc  # gVisor",
}


@dataclass(frozen=True)
class Availability:
    """Whether ``runtime`` can run a container on ``engine``; when not, why (``reason``), the
    fix as one sentence (``fix``) and as the commands to run, in order (``steps``; none for
    crun on a host with hybrid cgroups, where it cannot run a container: ``fix`` says so)."""

    runtime: str
    engine: str
    ok: bool
    reason: str = ""
    fix: str = ""
    steps: tuple[str, ...] = ()

    def message(self) -> str:
        """``runtime runsc is not available on docker: REASON; fix: FIX`` (empty when ok)."""
        if self.ok:
            return ""
        return f"runtime {self.runtime} is not available on {self.engine}: {self.reason}; fix: {self.fix}"


def cgroup_mode(root: Path = CGROUP_ROOT) -> str:
    """How this host mounts cgroups: ``unified`` (cgroup v2 only: ``cgroup.controllers`` at the
    root), ``hybrid`` (v1 controllers with a v2 tree at ``unified/``, which crun refuses) or
    ``legacy`` (v1 only)."""
    if (root / "cgroup.controllers").exists():
        return "unified"
    return "hybrid" if (root / "unified").is_dir() else "legacy"


def podman_runtime_socket(name: str, address: str | None = None) -> str:
    """The socket path of the Podman API service whose default runtime is ``name``, in the
    directory of the engine's own socket ``address``: ``unix:///run/podman/podman.sock`` ->
    ``/run/podman/podman-runsc.sock``, ``unix:///run/user/1001/podman/podman.sock`` ->
    ``/run/user/1001/podman/podman-runsc.sock`` (the same user's storage). The rootful one for
    None or a remote (tcp/ssh) address."""
    folder = os.path.dirname(address[len("unix://"):]) if address and address.startswith("unix://") else ""
    if not folder.startswith("/"):
        return PODMAN_RUNTIME_SOCKET.format(name=name)
    return os.path.join(folder, f"podman-{name}.sock")


def sandboxed(runtime: str | None) -> bool:
    """True when ``runtime`` gives each container a kernel of its own (gVisor)."""
    return runtime in SANDBOXED


def binary_gone(runtime: str, path: str) -> Availability:
    """Docker lists ``runtime`` (its ``daemon.json`` entry) at ``path``, which does not exist
    on the engine's host: every container on it would fail to start (``stat PATH``)."""
    install = _INSTALL.get(runtime, f"install {runtime}")
    reason = f"the Docker engine lists {runtime} at {path}, and no such file exists on this host"
    fix = (f"install it ({install}), or remove {runtime} from the \"runtimes\" of /etc/docker/daemon.json "
           "and reload dockerd with `kill -HUP $(pidof dockerd)`")
    return Availability(runtime, "docker", False, reason, fix, (install,))


def availability(runtime: str, engine: str, registered: Mapping[str, str],
                 which: Callable[[str], str | None] | None = None, address: str | None = None,
                 gone: Mapping[str, str] | None = None) -> Availability:
    """Can ``engine`` (``docker``/``podman``) run a container on ``runtime``?

    ``registered``: runtime name -> binary path, as the engine reported what it can give a
    container (``Engine.oci_runtimes()``: Docker's registered runtimes; Podman's service
    default plus any per-runtime service found). ``which`` finds a binary on this host (the
    unit tests fake it; default ``shutil.which``, looked up at the call). ``address``: the engine's
    socket (Podman: the runtime's service sits beside it, started as the socket's user). Never
    raises; the result carries the reason, the fix and the steps. ``gone``: runtime -> path of
    those registered whose binary is missing on the engine's host (``binary_gone``)."""
    if gone and runtime in gone:
        return binary_gone(runtime, gone[runtime])
    if runtime in registered:
        return Availability(runtime, engine, True)
    which = which or shutil.which
    installed = which(runtime) is not None or which(f"/usr/bin/{runtime}") is not None
    missing = "" if installed else f"{runtime} is not installed on this host ({_INSTALL.get(runtime, 'install it')}); "
    install = () if installed else (_INSTALL.get(runtime, f"install {runtime}"),)
    # crun fails every container on hybrid cgroups: no commands to run here, the fix says why
    hopeless = runtime == "crun" and cgroup_mode() == "hybrid"
    if engine == "podman":
        from labctl.runtime.lookup import as_rootless_user, rootless_owner

        sock = podman_runtime_socket(runtime, address)
        flags = " --runtime-flag network=none" if runtime == "runsc" else ""
        reason = (f"{'it is not installed, and ' if not installed else ''}no Podman API service whose default "
                  f"runtime is {runtime} answers at unix://{sock} (Podman 4's API ignores a container's runtime, "
                  "so labctl creates such containers through a service of their own, on the engine's storage)")
        rootless = bool(address) and rootless_owner(str(address)) is not None
        if rootless and runtime == "runsc":  # a user cannot create runsc's cgroups on cgroup v1
            flags += " --runtime-flag ignore-cgroups"
        service = f"podman --runtime {runtime}{flags} system service --time=0 unix://{sock}"
        if rootless:
            service = as_rootless_user(str(address), service)
        fix = f"{missing}then start `{service}` (.ci/run does this for runsc)"
        return Availability(runtime, engine, False, reason, fix, () if hopeless else (*install, f"{service} &"))
    args = f', {_RUNSC_ARGS}' if runtime == "runsc" else ""
    entry = f"\"runtimes\": {{\"{runtime}\": {{\"path\": \"/usr/bin/{runtime}\"{args}}}}}"
    reason = (f"{'it is not installed, and ' if not installed else ''}the Docker engine has no runtime named "
              f"{runtime} (registered: {', '.join(sorted(registered)) or 'none'})")
    fix = (f"{missing}then add {entry} to /etc/docker/daemon.json and reload dockerd with `kill -HUP $(pidof dockerd)` "
           f"(.ci/run does this for runsc{'; never on this host for crun' if runtime == 'crun' else ''})")
    steps = (*install, f"add {entry} to /etc/docker/daemon.json (merged into its top-level object)",
             "kill -HUP $(pidof dockerd)  # dockerd reloads its runtimes; or: systemctl restart docker")
    return Availability(runtime, engine, False, reason, fix, () if hopeless else steps)
