"""The engine boundary: the only package of labctl that imports an engine SDK.

``engine`` defines the interface (``Engine``, ``Container``, ``RunSpec``) every layer
above uses; ``docker_engine``/``docker_container`` implement it on the Docker SDK and
are the only modules importing ``docker``. ``Engine.connect()`` gives the engine to use.
Labels come from ``labctl.runtime.labels`` (re-exported here for older callers).
"""

from __future__ import annotations

import os

from labctl.runtime.labels import KEPT, LABEL_PREFIX, MANAGED, OWNER_HOST, OWNER_PID, ROLE, RUN_ID, SCENARIO, labels_for
from labctl.runtime.engine import Container, ContainerGone, Engine, RunSpec

__all__ = [
    "Container", "ContainerGone", "Engine", "RunSpec", "process_ipc_namespace",
    "KEPT", "LABEL_PREFIX", "MANAGED", "OWNER_HOST", "OWNER_PID", "ROLE", "RUN_ID", "SCENARIO", "labels_for",
]


def process_ipc_namespace(pid: int) -> str | None:
    """The IPC namespace (``ipc:[N]``) of host pid ``pid``, readable when labctl shares the
    engine's pid namespace with enough privilege; None otherwise."""
    try:
        return os.readlink(f"/proc/{pid}/ns/ipc")
    except OSError:
        return None
