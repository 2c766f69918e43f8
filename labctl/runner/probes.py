"""The probe set: root, read-only helper containers that look into a scenario container's
IPC namespace (``shmlab probe`` via ``docker exec``) or at its files (``--volumes-from``),
without changing anything (IPC_OWNER and DAC_READ_SEARCH only).

A container on a sandboxed runtime (gVisor, ``runsc``) runs on a kernel of its own: a holder
joining its IPC namespace from outside would see the host-side namespace the engine made,
not what its programs see. Such a container is probed from inside: ``shmlab probe`` is
exec'd in the container itself (the same sandbox, as its programs), and its namespace
identity is its sandbox (no other container shares it, whatever ``ipc:`` the engine
accepted). When that is impossible (not running, no /shmlab in its image) the probe is
refused with the reason, never answered from outside."""

from __future__ import annotations

from collections.abc import Callable

import tenacity

from labctl.errors import ContainerStartError, EngineError, LabctlError
from labctl.runner.context import RunContext
from labctl.runtime import process_ipc_namespace
from labctl.runtime.engine import Container, RunSpec
from labctl.runtime.jsonlines import json_events
from labctl.runtime.oci import sandboxed
from labctl.scenario.kinds.registry import kind_of
from labctl.scenario.model import Scenario

PROBE_CAPS = ["IPC_OWNER", "DAC_READ_SEARCH"]  # read any segment / file, change nothing
PROBE_EXEC_S = 30.0  # the longest one probe exec may take (within the scenario deadline)
PROBE_TRIES = 4  # execs of one probe whose output the engine lost (exit 0, nothing attached)
EXIT_RACE_S = 3.0  # how long a donor that refused a probe's join may take to be seen exited


def probe_event(text: str) -> dict | None:
    """The ``{"event": "probe", ...}`` line of a probe's output, if any."""
    return next((dict(e) for e in json_events(text) if e.get("event") == "probe"), None)


def probed_owners(scenario: Scenario) -> set[str]:
    """The IPC namespace owners some check (``segment``, ``objects``, ``file`` under
    /dev/shm; in checks: or in a step) looks into: the kinds that say so
    (``CheckKind.probes``). A container probed from inside (``inside``) needs no holder."""
    owners = set()
    for ch in scenario.all_checks():
        targets = kind_of(ch.body).probes(ch.body)
        for target in (targets,) if isinstance(targets, str) else targets or ():
            if target and not inside(scenario, target):
                owners.add(scenario.ipc_owner(target))
    return owners


def inside(scenario: Scenario, container: str) -> bool:
    """True when ``container`` is probed from inside (a sandboxed runtime), not by a holder."""
    if container == "host":
        return False
    return sandboxed(scenario.container(container).runtime)


class ProbeSet:
    """Probe holders by role: ``probe-OWNER`` (an IPC namespace owner's) and ``files-NAME``.
    ``started(role)`` gives the container of a scenario role once the runner created it
    (None: never created), ``refusal(role)`` the engine's reason when it refused it."""

    def __init__(self, ctx: RunContext, started: Callable[[str], Container | None],
                 refusal: Callable[[str], str | None]) -> None:
        self.ctx = ctx
        self.started = started
        self.refusal = refusal
        self.holders: dict[str, Container] = {}  # IPC owner's name, or files-NAME -> holder
        self.refused: dict[str, str] = {}  # probe-OWNER -> why its holder did not start
        self.gone: dict[str, str] = {}  # owner -> why its namespace ended before a probe joined

    def inside(self, container: str) -> bool:
        """True when ``container`` is probed from inside (a sandboxed runtime), not by a holder."""
        return inside(self.ctx.scenario, container)

    def _inside(self, container: str, args: list[str], timeout: float | None) -> dict:
        """``shmlab probe ARGS`` exec'd in ``container`` itself (its sandbox), or LabctlError
        saying why the programs' view cannot be had."""
        spec = self.ctx.scenario.container(container)
        c = self.started(container)
        what = f"the gVisor sandbox of {container} (runtime {spec.runtime})"
        if c is None:
            why = self.refusal(container) or "it did not start"
            raise LabctlError(f"cannot probe {what}: {why}")
        if not spec.workload:
            raise LabctlError(f"cannot probe {what}: it runs image {spec.image}, and the probe can only look inside "
                              "a sandbox by running /shmlab there (a workload container); a holder outside would "
                              "see the host's side, not what its programs see")
        if c.poll_exit() is not None:
            raise LabctlError(f"cannot probe {what}: it is not running, and a sandbox's kernel (with every IPC "
                              "object in it) ends with its container; a probe from outside would see the host's "
                              "side instead of what its programs saw")
        return self.run(c, args, what, timeout)

    def start_for(self, owner: str) -> None:
        """Join ``owner``'s IPC namespace with a holder, as soon as the owner runs, so it
        can be probed even after the owner exits (the holder then keeps the namespace,
        and its segments, alive). Deterministic whatever the owner's lifetime: an owner
        that already exited is joined through a container of its namespace still
        running (a joiner), and with none left the namespace is known to be gone (its
        last process exited: the kernel destroyed everything in it), which ``probe_ipc``
        then reports as empty. A refusal of a running owner is recorded, not raised."""
        ctx = self.ctx
        c = ctx.scenario.container(owner)
        role = f"probe-{owner}"
        if c.ipc == "host":
            self._join(owner, role, "host")
            return
        for via in [owner, *self._joiners(owner)]:
            target = self.started(via)
            if target is None:
                continue
            if self._join(owner, role, f"container:{target.name}"):
                self.refused.pop(role, None)
                return
            # A refusal may race the donor's exit (Podman refuses to join a namespace whose
            # donor is exiting, "dependencies ... are not started", before its inspect says
            # exited): wait for that exit, bounded, before taking the refusal as final.
            if target.poll_exit() is None and target.wait_exit(EXIT_RACE_S) is None:
                return  # a running container refused the join: the engine's reason stands
        if self.started(owner) is not None:
            self.gone[owner] = (f"the IPC namespace of {owner} ended with its last process before a probe "
                                f"could join ({owner} exited at once): nothing in it survives")

    def _joiners(self, owner: str) -> list[str]:
        scenario = self.ctx.scenario
        return [c.name for c in scenario.containers if c.name != owner and scenario.ipc_owner(c.name) == owner]

    def _join(self, owner: str, role: str, ipc: str) -> bool:
        ctx = self.ctx
        spec = RunSpec(name=ctx.name(role), image=ctx.image, labels=ctx.labels(role),
                       command=["hold"], ipc_mode=ipc, user="0:0", cap_add=PROBE_CAPS)
        try:
            self.holders[owner] = ctx.engine.start_container(spec, role)
            return True
        except (ContainerStartError, EngineError) as e:
            # Podman refuses at start (attach), not create, a holder whose donor already exited
            self.refused[role] = getattr(e, "reason", None) or str(e)
            ctx.engine.remove_labelled(ctx.selector(role))  # the created, unstarted holder
            return False

    def run(self, holder: Container, args: list[str], what: str, timeout: float | None = None) -> dict:
        """``docker exec HOLDER /shmlab ARGS``, bounded by ``timeout`` (the check's deadline)
        and the scenario's (at most PROBE_EXEC_S, at least 1 s); its probe event, else
        LabctlError (also for a hung exec, naming it)."""
        bound = min(PROBE_EXEC_S, self.ctx.remaining(), timeout if timeout is not None else PROBE_EXEC_S)
        # Podman 4.3 now and then loses a successful exec's output (exit 0, nothing attached;
        # twice in a row under load): the probe only reads, so it is asked again, up to
        # PROBE_TRIES times within its bound
        code, text = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda res: res[0] == 0 and not res[1].strip()),
            stop=tenacity.stop_after_attempt(PROBE_TRIES) | tenacity.stop_after_delay(bound),
            wait=tenacity.wait_exponential(multiplier=0.02, max=0.2),
            retry_error_callback=lambda state: state.outcome.result(),  # the last answer, as it was
        )(lambda: holder.exec(["/shmlab", *args], timeout=max(1.0, min(bound, self.ctx.remaining()))))
        data = probe_event(text)
        if data is None:
            raise LabctlError(f"probe of {what} failed (exit {code}): {text.strip()[-300:]}")
        return data

    def probe_ipc(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        """``shmlab probe ARGS`` in the IPC namespace of ``container`` (its owner's holder; a
        sandboxed container: inside itself)."""
        if self.inside(container):
            return self._inside(container, args, timeout)
        owner = self.ctx.scenario.ipc_owner(container)
        holder = self.holders.get(owner)
        if holder is None and owner in self.gone:
            return {"event": "probe", "segments": [], "note": self.gone[owner]}
        if holder is None:
            why = self.refused.get(f"probe-{owner}") or self.refusal(owner) or "its owner did not start"
            raise LabctlError(f"cannot probe the IPC namespace of {container}: {why}")
        return self.run(holder, args, f"the IPC namespace of {container}", timeout)

    def probe_file(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        """``shmlab probe ARGS`` with the volumes of ``container`` (holder started on first use)."""
        if self.inside(container):
            return self._inside(container, args, timeout)
        ctx = self.ctx
        role = f"files-{container}"
        holder = self.holders.get(role)
        if holder is None:
            target = self.started(container)
            if target is None:
                raise LabctlError(f"cannot look at the files of {container}: it did not start")
            spec = RunSpec(name=ctx.name(role), image=ctx.image, labels=ctx.labels(role), command=["hold"],
                           user="0:0", cap_add=PROBE_CAPS, volumes_from=[target.name])
            holder = self.holders[role] = ctx.engine.start_container(spec, role)
        return self.run(holder, args, f"the files of {container}", timeout)

    def ipc_namespace(self, container: str) -> str | None:
        """The IPC namespace id (``ipc:[N]``) of a scenario container: from its ``start``
        event, else from /proc of its pid while it runs; None if unknown. A sandboxed
        container's is ``gvisor-sandbox:NAME``: its sandbox's kernel, which no other
        container shares (the host-side namespace in /proc is not what its programs see)."""
        c = self.started(container)
        if c is None:
            return None
        if self.inside(container):
            return f"gvisor-sandbox:{c.name}"
        with c.output.changed:  # the latest run's: a restarted container may be in a new one
            start = c.output.run_first.get("start") or c.output.first.get("start") or {}
        if start.get("ipcns") and start["ipcns"] != "unknown":  # "unknown": /proc/self/ns/ipc unreadable
            return str(start["ipcns"])
        pid = c.pid() if c.poll_exit() is None else None
        return process_ipc_namespace(pid) if pid else None
