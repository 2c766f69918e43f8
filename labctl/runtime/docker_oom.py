"""Whether Docker's memory cgroup OOM killer ended a container, beyond ``State.OOMKilled``.

Docker sets ``State.OOMKilled`` only when containerd's OOM notice is handled *before* the
exit. Under concurrent load it can come a few milliseconds after (seen: about 1 in 150 OOM
kills at ``--jobs 4``): the flag then stays false for good, but the engine still logs the
container's ``oom`` event. (A process killed before containerd watches its memory cgroup,
i.e. before the start returned, leaves neither: nothing here can recover that.)
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import docker.errors
import requests.exceptions

# How long after an exit the engine's ``oom`` event may still arrive (seen: ~30 ms under load).
OOM_EVENT_GRACE = 1.0


def unix_seconds(stamp: str) -> float | None:
    """``2026-12-04T21:20:11.123456789Z`` (the engine's RFC 3339 time, UTC) as Unix seconds
    (fraction dropped); None when it is not one (empty, or the zero time of a never-started
    container)."""
    try:
        t = datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    if t.year < 2000:
        return None
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def oom_event_logged(api: Any, container_id: str, started_at: str, grace: float = OOM_EVENT_GRACE) -> bool:
    """Whether the engine's event log holds an ``oom`` event for ``container_id`` since it
    started (``GET /events`` filtered on the container and ``event=oom``, ``since`` its
    ``State.StartedAt``, ``until`` ``grace`` seconds from now: a wait on the event with a
    deadline, ended by the first match). False when no such event comes or the engine
    cannot say (any error)."""
    since = unix_seconds(started_at)
    now = time.time()
    if since is None or since > now:
        since = now - 3600
    stream = None
    try:
        stream = api.events(since=int(since) - 1, until=now + grace, decode=True,
                            filters={"type": "container", "container": container_id, "event": "oom"})
        for ev in stream:
            if isinstance(ev, dict) and ev.get("Action", ev.get("status")) == "oom":
                return True
    except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError):
        return False
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return False
