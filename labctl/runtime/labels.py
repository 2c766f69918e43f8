"""The labels of every object labctl creates: the one home of the ``io.labctl.*`` keys.

Docker-free, so the runtime, the compose renderer, cleanup and the bench all import
the same keys. Everything labctl creates on an engine (container, volume, network)
gets its labels from ``labels_for`` and nowhere else; teardown, ``labctl clean`` and
the tests' leak guard find objects by them.
"""

from __future__ import annotations

import os

from labctl.errors import LabctlError

LABEL_PREFIX = "io.labctl."
MANAGED = "io.labctl.managed"  # "true" on everything labctl made
RUN_ID = "io.labctl.run-id"  # one ``labctl run`` (uuid4 hex)
SCENARIO = "io.labctl.scenario"  # the scenario name (or "bench", "compose", ...)
ROLE = "io.labctl.role"  # the scenario container's name, or probe-X, prep, volume-X, ...
OWNER_PID = "io.labctl.pid"  # the labctl process that owns the run (stale-run detection)
OWNER_HOST = "io.labctl.host"  # that process's host (uname nodename)
OWNER_CONTAINER = "io.labctl.container"  # labctl's own container, when it runs in one on this engine
KEPT = "io.labctl.keep"  # objects of a `run --keep`: only `labctl clean` removes them
# Annotations of the Pods `labctl export k8s` writes (a pod holds several roles)
POD_CONTAINERS = "io.labctl.containers"  # the scenario's containers in this pod, comma-separated
SCENARIO_FILE = "io.labctl.file"  # the scenario file it was exported from
# set by users on their own services/pods for `labctl check`: bytes the container writes into /dev/shm
SHM_USE = "io.labctl.shm-use"
# On the workload image (not managed: `labctl clean` leaves it; build prunes old ones)
IMAGE = "io.labctl.image"  # "shmlab"
SOURCE_HASH = "io.labctl.source-hash"  # the content hash the image was built from
PLATFORM = "io.labctl.platform"  # the OCI platform its binary is for (linux/arm64)


_owner_container: str | None = None


def set_owner_container(container_id: str | None) -> None:
    """labctl runs in container ``container_id`` on the engine (see ``labctl.runtime.hostpaths``):
    every object it creates from now on names it, so a crash of that container leaves a
    run that ``remove_stale`` recognises as dead."""
    global _owner_container
    _owner_container = container_id


def check_user_labels(user_labels: dict[str, str] | None) -> dict[str, str]:
    """A copy of a scenario's own labels; raises LabctlError for a key in ``io.labctl.``."""
    labels = dict(user_labels or {})
    for key in labels:
        if key.startswith(LABEL_PREFIX):
            raise LabctlError(f"label {key!r}: the io.labctl. prefix is reserved for labctl")
    return labels


def labels_for(run_id: str, scenario: str, role: str, user_labels: dict[str, str] | None = None, *,
               keep: bool = False, owner: bool = True) -> dict[str, str]:
    """The labels of one object labctl creates: ``user_labels`` (none in ``io.labctl.``,
    else LabctlError) plus managed/run-id/scenario/role and, with ``owner``, the owning
    process (pid, host) so ``clean --stale`` can tell a dead run's debris.
    ``keep``: left on purpose (``run --keep``), so never a dead run's debris."""
    labels = check_user_labels(user_labels)
    labels.update({MANAGED: "true", RUN_ID: run_id, SCENARIO: scenario, ROLE: role})
    if owner:
        labels.update({OWNER_PID: str(os.getpid()), OWNER_HOST: os.uname().nodename})
        if _owner_container is not None:
            labels[OWNER_CONTAINER] = _owner_container
    if keep:
        labels[KEPT] = "true"
    return labels


def selector(run_id: str, scenario: str | None = None, role: str | None = None) -> dict[str, str]:
    """The labels that pick one run's objects (optionally one scenario's, one role's),
    as ``Engine.find``/``remove_labelled`` take them."""
    sel = {RUN_ID: run_id}
    if scenario is not None:
        sel[SCENARIO] = scenario
    if role is not None:
        sel[ROLE] = role
    return sel
