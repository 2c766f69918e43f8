"""The host-IPC guard of a scenario with ``ipc: host`` containers: what the engine host's
IPC namespace showed before the run, and after it the removal of the host segments the
scenario's own workloads left (a failure or Ctrl-C may have come before their IPC_RMID).

The host is read by one-shot probe containers in ``ipc: host``, so it is the engine
host's namespace wherever labctl itself runs (a container, a remote engine)."""

from __future__ import annotations

import uuid

from labctl.errors import LabctlError
from labctl.runner.context import RunContext
from labctl.runner.roster import Roster
from labctl.runtime.engine import RunSpec
from labctl.scenario.kinds.cleanup import CleanupCheck

HOST_PROBE = "host-probe"  # the role of the one-shot host probes


def describe_segment(s: dict) -> str:
    return f"host segment key {s.get('key')} shmid {s.get('shmid')}"


class HostIPCGuard:
    """Host IPC before/after one scenario; ``armed`` when a cleanup check asks for it."""

    def __init__(self, ctx: RunContext, roster: Roster) -> None:
        self.ctx = ctx
        self.roster = roster
        self.before: set[str] | None = None
        self._segments: dict[int, dict] = {}  # shmid -> segment, of the last snapshot
        self._namespace: str | None = None

    @property
    def uses_host_ipc(self) -> bool:
        return any(c.ipc == "host" for c in self.ctx.scenario.containers)

    @property
    def wanted(self) -> bool:
        """A host-IPC scenario with a ``cleanup: {host_ipc: true}`` check."""
        return self.uses_host_ipc and any(
            isinstance(c.body, CleanupCheck) and c.body.host_ipc for c in self.ctx.scenario.checks)

    def arm(self) -> None:
        """Take the before-snapshot (before anything of the scenario starts)."""
        self.before = self.snapshot()

    def probe(self, args: list[str], user: str = "0:0") -> dict:
        """Run ``shmlab ARGS`` once in the engine host's IPC namespace, as ``user``, and
        return its probe event; LabctlError if it gives none."""
        ctx = self.ctx
        spec = RunSpec(name=ctx.name(f"{HOST_PROBE}-{uuid.uuid4().hex[:6]}"), image=ctx.image,
                       labels=ctx.labels(HOST_PROBE), command=args, ipc_mode="host", user=user)
        holder = ctx.engine.start_container(spec, HOST_PROBE)
        try:
            status = holder.wait_exit(max(5.0, ctx.remaining()))
            data = holder.output.first.get("probe")
            if status is None or data is None:
                raise LabctlError(f"host IPC probe failed: {holder.output.tail(5)}")
        finally:
            ctx.engine.remove_labelled(ctx.selector(HOST_PROBE))
        return data

    def namespace(self) -> str | None:
        """The engine host's IPC namespace id (``ipc:[N]``), read once."""
        if self._namespace is None:
            self._namespace = str(self.probe(["probe", "--ns"]).get("ipcns") or "") or None
        return self._namespace

    def snapshot(self) -> set[str]:
        """The host's SysV segments and /dev/shm entries, one string each."""
        data = self.probe(["probe", "--segments", "--devshm"])
        self._segments = {int(s["shmid"]): s for s in data.get("segments", []) if "shmid" in s}
        seen = {describe_segment(s) for s in data.get("segments", [])}
        return seen | {f"host /dev/shm/{d.get('name')}" for d in data.get("devshm", [])}

    def _our_shmids(self) -> set[int]:
        """Segments this scenario's workloads reported attaching (their ``attached`` events)."""
        return {i for i in self.roster.created("shmid") if isinstance(i, int)}

    def remove_leftovers(self, errors: list[str]) -> list[str]:
        """After the scenario: remove the new host segments its own workloads attached;
        anything else new is only reported, since it may belong to the host. Returns what
        is still new; a probe failure goes to ``errors``."""
        if self.before is None:
            return []
        try:
            new = self.snapshot() - self.before
            ours = [s for shmid, s in self._segments.items()
                    if shmid in self._our_shmids() and describe_segment(s) in new]
            for seg in ours:  # as the segment's owner: IPC_RMID needs no capability then
                self.probe(["probe", "--shmid", str(seg["shmid"]), "--rmid"],
                           user=f"{seg.get('uid', 0)}:{seg.get('gid', 0)}")
            if ours:
                new = self.snapshot() - self.before
        except LabctlError as e:
            errors.append(str(e))
            return []
        return sorted(new)
