"""The engine boundary: the only package of labctl that imports an engine SDK.

``engine`` defines the interface (``Engine``, ``Container``, ``RunSpec``) every layer
above uses; ``docker_engine``/``docker_container`` implement it on the Docker SDK,
``podman_engine`` on Podman's compatible API: the only modules importing ``docker``.
``Engine.connect()`` gives the engine to use (names and addresses: ``lookup``). Labels:
``labels``; labctl's own paths as the engine sees them: ``hostpaths``; ``labctl clean``:
``clean``; a container's exit status and output: ``logs``.
"""

from __future__ import annotations

import os

from labctl.runtime.engine import Container, ContainerGone, Engine, RunSpec

__all__ = ["Container", "ContainerGone", "Engine", "RunSpec", "process_ipc_namespace"]


def process_ipc_namespace(pid: int) -> str | None:
    """The IPC namespace (``ipc:[N]``) of host pid ``pid``, readable when labctl shares the
    engine's pid namespace with enough privilege; None otherwise."""
    try:
        return os.readlink(f"/proc/{pid}/ns/ipc")
    except OSError:
        return None
