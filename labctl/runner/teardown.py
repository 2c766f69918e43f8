"""Teardown of one scenario: everything it created goes by label, its temp dirs by path,
the host segments its workloads left by the host-IPC guard; then what is still there."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from labctl.runner.context import RunContext
from labctl.runner.hostipc import HostIPCGuard
from labctl.runner.plan import Platforms
from labctl.runner.roster import Roster
from labctl.runner.storage import Storage
from labctl.runtime.hostproc import container_trail


NS_GRACE_S = 2.0  # the kernel reaps a SIGKILLed container's processes asynchronously
# qemu-user reserves the guest's whole address space: tearing down a killed emulated
# process's memory takes seconds on a loaded machine (seen: > 2 s with load 12 on 2 cores)
NS_GRACE_EMULATED_S = 15.0


@dataclass
class TeardownResult:
    """``problems``: what could not be removed or looked at (the scenario errs);
    ``leftovers``: objects of the scenario still there afterwards (cleanup checks read them)."""

    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def teardown(ctx: RunContext, storage: Storage, guard: HostIPCGuard, roster: Roster,
             platforms: Platforms | None = None) -> TeardownResult:
    """Force-remove the scenario's containers, volumes and networks (by its labels), delete
    its temp dirs (``storage``), remove the host objects its workloads (``roster``) left
    (``guard``); report what remains. A scenario with containers that ``platforms`` runs
    under qemu gives their IPC namespaces a longer grace to go."""
    result = TeardownResult()
    ended: set[str] = set()
    try:
        ended = guard.ended(roster.containers)
        result.problems += ctx.engine.remove_labelled(ctx.selector())[1]
    finally:
        # Also when an interrupt lands in the removal above: the CLI then removes the
        # run's engine objects by label, but only this scenario knows its host dirs.
        result.problems += [f"temp dir {p}" for p in storage.remove_dirs()]
    new = guard.remove_leftovers(result.problems, roster.reporters, ended)
    left = ctx.engine.find(ctx.selector())
    result.leftovers = [f"{kind[:-1]} {n}" for kind, names in left.items() for n in names] + [
        f"temp dir {p}" for p in storage.leftover_dirs()] + new + live_namespaces(
        roster.namespaces(), {c.id for c in roster.containers.values()},
        NS_GRACE_EMULATED_S if platforms and platforms.any_emulated(ctx.scenario.containers) else NS_GRACE_S)
    return result


def live_namespaces(created: dict[str, str], ours: set[str], grace: float = NS_GRACE_S) -> list[str]:
    """The IPC namespaces the scenario's containers created (``{ipc:[N]: role}``) that a
    process of one of its own containers (ids ``ours``, from the process's cgroup) still
    holds after teardown, with their pids: everything in such a namespace (segments,
    semaphores, queues, /dev/shm, mqueues) lives on with it. The kernel reuses the number
    of a destroyed namespace, so a process of anyone else's container in ``ipc:[N]`` is
    in another namespace. Seen through /proc, so only where labctl shares the engine's
    pid namespace (on the engine host, as root); elsewhere nothing is reported."""
    deadline = time.monotonic() + grace
    while True:
        held: dict[str, list[int]] = {}
        if created:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        ns = os.readlink(f"/proc/{entry.name}/ns/ipc")
                    except OSError:
                        continue
                    if ns in created and _in_container(int(entry.name), ours):
                        held.setdefault(ns, []).append(int(entry.name))
        if not held or time.monotonic() >= deadline:
            return [f"IPC namespace {ns} of {created[ns]} still alive (held by pid "
                    f"{', '.join(map(str, sorted(pids)[:5]))}): everything in it lives on" for ns, pids in held.items()]
        time.sleep(0.05)


def _in_container(pid: int, ids: set[str]) -> bool:
    """Whether ``pid`` runs in one of the containers ``ids`` (its cgroup path names it, or,
    on a rootless engine without cgroups of its own, its conmon ancestor's command line)."""
    text = container_trail(pid)
    return any(cid in text for cid in ids if cid)
