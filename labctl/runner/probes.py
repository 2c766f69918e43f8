"""The probe set: root, read-only helper containers that look into a scenario container's
IPC namespace (``shmlab probe`` via ``docker exec``) or at its files (``--volumes-from``),
without changing anything (IPC_OWNER and DAC_READ_SEARCH only)."""

from __future__ import annotations

import json

from labctl.errors import ContainerStartError, LabctlError
from labctl.runner.context import RunContext
from labctl.runner.roster import Roster
from labctl.runtime import process_ipc_namespace
from labctl.runtime.engine import Container, RunSpec

PROBE_CAPS = ["IPC_OWNER", "DAC_READ_SEARCH"]  # read any segment / file, change nothing


def probe_event(text: str) -> dict | None:
    """The ``{"event": "probe", ...}`` line of a probe's output, if any."""
    for line in text.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            if data.get("event") == "probe":
                return dict(data)
    return None


class ProbeSet:
    """Probe holders by role: ``probe-OWNER`` (an IPC namespace owner's) and ``files-NAME``."""

    def __init__(self, ctx: RunContext, roster: Roster) -> None:
        self.ctx = ctx
        self.roster = roster
        self.holders: dict[str, Container] = {}  # IPC owner's name, or files-NAME -> holder
        self.refused: dict[str, str] = {}  # probe-OWNER -> why its holder did not start

    def owners(self) -> set[str]:
        """The IPC namespace owners some ``segment`` check looks into."""
        scenario = self.ctx.scenario
        return {scenario.ipc_owner(ch.body.in_)  # type: ignore[union-attr]
                for ch in scenario.checks if ch.kind == "segment"}

    def start_for(self, owner: str) -> None:
        """Join ``owner``'s IPC namespace with a holder, as soon as the owner runs, so it
        can be probed even after the owner exits (the holder then keeps the namespace,
        and its segments, alive). A refusal is recorded, not raised."""
        ctx = self.ctx
        c = ctx.scenario.container(owner)
        ipc = "host" if c.ipc == "host" else f"container:{self.roster.containers[owner].name}"
        role = f"probe-{owner}"
        spec = RunSpec(name=ctx.name(role), image=ctx.image, labels=ctx.labels(role),
                       command=["hold"], ipc_mode=ipc, user="0:0", cap_add=PROBE_CAPS)
        try:
            self.holders[owner] = ctx.engine.start_container(spec, role)
        except ContainerStartError as e:
            self.refused[role] = e.reason

    @staticmethod
    def run(holder: Container, args: list[str], what: str) -> dict:
        """``docker exec HOLDER /shmlab ARGS``; its probe event, else LabctlError."""
        code, text = holder.exec(["/shmlab", *args])
        data = probe_event(text)
        if data is None:
            raise LabctlError(f"probe of {what} failed (exit {code}): {text.strip()[-300:]}")
        return data

    def probe_ipc(self, container: str, args: list[str]) -> dict:
        """``shmlab probe ARGS`` in the IPC namespace of ``container`` (its owner's holder)."""
        owner = self.ctx.scenario.ipc_owner(container)
        holder = self.holders.get(owner)
        if holder is None:
            why = self.refused.get(f"probe-{owner}") or self.roster.refused.get(owner) or "its owner did not start"
            raise LabctlError(f"cannot probe the IPC namespace of {container}: {why}")
        return self.run(holder, args, f"the IPC namespace of {container}")

    def probe_file(self, container: str, args: list[str]) -> dict:
        """``shmlab probe ARGS`` with the volumes of ``container`` (holder started on first use)."""
        ctx = self.ctx
        role = f"files-{container}"
        holder = self.holders.get(role)
        if holder is None:
            target = self.roster.get(container)
            if target is None:
                raise LabctlError(f"cannot look at the files of {container}: it did not start")
            spec = RunSpec(name=ctx.name(role), image=ctx.image, labels=ctx.labels(role), command=["hold"],
                           user="0:0", cap_add=PROBE_CAPS, volumes_from=[target.name])
            holder = self.holders[role] = ctx.engine.start_container(spec, role)
        return self.run(holder, args, f"the files of {container}")

    def ipc_namespace(self, container: str) -> str | None:
        """The IPC namespace id (``ipc:[N]``) of a scenario container: from its ``start``
        event, else from /proc of its pid while it runs; None if unknown."""
        c = self.roster.get(container)
        if c is None:
            return None
        with c.output.changed:
            start = c.output.first.get("start") or {}
        if start.get("ipcns"):
            return str(start["ipcns"])
        pid = c.pid() if c.poll_exit() is None else None
        return process_ipc_namespace(pid) if pid else None
