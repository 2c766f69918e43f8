"""Teardown of one scenario: everything it created goes by label, its temp dirs by path,
the host segments its workloads left by the host-IPC guard; then what is still there."""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.runner.context import RunContext
from labctl.runner.hostipc import HostIPCGuard
from labctl.runner.storage import Storage


@dataclass
class TeardownResult:
    """``problems``: what could not be removed or looked at (the scenario errs);
    ``leftovers``: objects of the scenario still there afterwards (cleanup checks read them)."""

    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def teardown(ctx: RunContext, storage: Storage, guard: HostIPCGuard) -> TeardownResult:
    """Force-remove the scenario's containers, volumes and networks (by its labels), delete
    its temp dirs, remove its workloads' host segments; report what remains."""
    result = TeardownResult()
    try:
        result.problems += ctx.engine.remove_labelled(ctx.selector())[1]
    finally:
        # Also when an interrupt lands in the removal above: the CLI then removes the
        # run's engine objects by label, but only this scenario knows its host dirs.
        result.problems += [f"temp dir {p}" for p in storage.remove_dirs()]
    new = guard.remove_leftovers(result.problems)
    left = ctx.engine.find(ctx.selector())
    result.leftovers = [f"{kind[:-1]} {n}" for kind, names in left.items() for n in names] + [
        f"temp dir {p}" for p in storage.leftover_dirs()] + new
    return result
