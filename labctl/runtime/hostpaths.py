"""Which of labctl's own paths the engine can see.

labctl usually runs next to its engine and bind-mounts host directories (``tempdir`` and
``hostdir`` volumes) by their paths. In a container (the labctl image in a CI job) or
against a remote engine (``DOCKER_HOST=tcp://docker:2375``, a ``docker:dind`` service)
the engine resolves a bind source on *its* host, where labctl's ``/tmp`` does not exist:

* in a container on the same engine, labctl inspects its own container and maps paths
  under its bind mounts to their host paths (``-v /srv/lab:/lab`` makes ``/lab/x`` the
  engine's ``/srv/lab/x``), and labels what it creates with its container id, so a crash
  of the labctl container leaves a stale run that ``labctl run``/``clean --stale`` removes;
* a path no mount covers cannot be bound: a ``tempdir`` becomes a per-run named volume
  (the same shared directory for the containers; only the host cannot look in), a
  ``hostdir`` is refused with the mount to add.

Docker-free: the engine is asked through ``container_mounts`` (bind mounts of a
container, or None when the engine does not know it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from labctl.runtime import labels

IN_CONTAINER_ENV = "LABCTL_IN_CONTAINER"  # the labctl image sets it
_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")
_views: dict[int, "EngineView"] = {}


@dataclass(frozen=True)
class EngineView:
    """How the engine sees labctl's filesystem. ``shared``: the same paths (labctl on
    the engine's host); else ``binds`` (container path, host path) translate."""

    shared: bool
    binds: tuple[tuple[str, str], ...] = field(default=())
    container: str | None = None  # labctl's own container on this engine

    def to_engine(self, path: str) -> str | None:
        """The engine's path for labctl's ``path``, or None when the engine cannot see it."""
        path = os.path.normpath(path)
        if self.shared:
            return path
        for inside, outside in sorted(self.binds, key=lambda b: -len(b[0])):
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                return os.path.normpath(outside + path[len(inside):])
        return None


def in_container(env: dict[str, str] | None = None) -> bool:
    """``$LABCTL_IN_CONTAINER`` (the labctl image sets it; set it yourself for a pip-installed
    labctl in a job container). Deliberately not guessed from ``/.dockerenv``: a machine
    that is itself a container running its own engine shares its paths with that engine."""
    env = dict(os.environ) if env is None else env
    return env.get(IN_CONTAINER_ENV, "").lower() not in ("", "0", "false", "no")


def own_container_id(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The id of the container this process runs in, from the engine-managed files
    (hostname, resolv.conf) bind-mounted into it; None outside a container."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    found = _CONTAINER_ID.findall(text)
    return found[0] if found else None


def local_engine(address: str | None = None) -> bool:
    """A unix socket: the engine runs on this machine (tcp/ssh: somewhere else)."""
    address = address if address is not None else os.environ.get("DOCKER_HOST", "")
    return address == "" or address.startswith("unix://")


def view(engine: Any) -> EngineView:
    """What ``engine`` sees of labctl's paths (cached per engine). In a container found on
    the engine, it also labels everything labctl creates with that container's id."""
    key = id(engine)
    if key in _views:
        return _views[key]
    result = EngineView(shared=local_engine())
    if in_container():
        cid = own_container_id()
        mounts = None
        if cid is not None and hasattr(engine, "container_mounts"):
            mounts = engine.container_mounts(cid)
        if mounts is not None:
            result = EngineView(shared=False, binds=tuple(mounts), container=cid)
            labels.set_owner_container(cid)
        else:
            result = EngineView(shared=False)
    _views[key] = result
    return result
