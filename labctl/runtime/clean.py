"""Removing what labctl left: one run's objects, dead runs' objects, or everything managed."""

from __future__ import annotations

import os

from labctl.runtime.labels import KEPT, MANAGED, OWNER_CONTAINER, OWNER_HOST, OWNER_PID, RUN_ID
from labctl.runtime import Engine


def remove_run(engine: Engine, run_id: str) -> tuple[list[str], list[str]]:
    """Remove every object of run ``run_id`` (containers first, then volumes, networks).
    ``run_id`` may be the short form progress lines show (a prefix of at least 8
    characters) when it names one run only; UsageError when it names several."""
    from labctl.errors import UsageError

    if len(run_id) >= 8 and len(run_id) < 36:
        matches = sorted(r for r in engine.run_ids() if r.startswith(run_id))
        if len(matches) > 1:
            raise UsageError(f"run id {run_id!r} is the start of {len(matches)} runs ({', '.join(matches)}): "
                             "give more of it")
        if matches:
            run_id = matches[0]
    return engine.remove_labelled({RUN_ID: run_id})


def _owner_alive(labels: dict[str, str], engine: Engine | None = None) -> bool:
    """True unless the labels name a labctl process on this host that no longer exists,
    or a labctl container (the labctl image) that no longer runs on ``engine``.
    Objects from another host, or without owner labels (compose demo), count as alive."""
    container = labels.get(OWNER_CONTAINER)
    if container and engine is not None and hasattr(engine, "container_running"):
        running = engine.container_running(container)
        if running is not None:
            return running
    pid, host = labels.get(OWNER_PID), labels.get(OWNER_HOST)
    if not pid or not pid.isdigit() or host != os.uname().nodename:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return True
    # pid reuse: a live process that is not a Python running labctl/pytest is not the owner
    return b"labctl" in cmd or b"pytest" in cmd or b"python" in cmd


def remove_stale(engine: Engine) -> tuple[list[str], list[str]]:
    """Remove the objects of runs whose labctl process died (SIGKILL, crash), and only those.
    A ``run --keep`` also outlives its process, on purpose: its objects stay until `labctl clean`."""
    removed: list[str] = []
    errors: list[str] = []
    for run_id, labels in engine.run_ids().items():
        if run_id and labels.get(KEPT) != "true" and not _owner_alive(labels, engine):
            r, e = remove_run(engine, run_id)
            removed += r
            errors += e
    return removed, errors


def clean(engine: Engine, *, stale_only: bool = False) -> tuple[list[str], list[str]]:
    """``labctl clean``: every object labelled io.labctl.managed=true, or only dead runs'."""
    if stale_only:
        return remove_stale(engine)
    return engine.remove_labelled({MANAGED: "true"})
