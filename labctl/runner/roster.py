"""The roster: the scenario's containers by role (its name in the scenario), the engine's
refusals, the container timeouts, and waiting on ``after`` conditions.

A role keeps its entry for the whole scenario; lifecycle steps (restart, kill, stop,
pause...) act on ``roster[role]`` and record what they did here, so checks and the
report keep reading one container per role.
"""

from __future__ import annotations

import threading

from labctl.checks import evaluate as checkmod
from labctl.errors import ContainerStartError, LabctlError
from labctl.runtime.logs import ExitStatus, Output
from labctl.runner.context import RunContext
from labctl.runtime.engine import Container, RunSpec
from labctl.scenario.model import After, ContainerSpec
from labctl.checks.watch import CreatedObjects, EventSeen, LineSearch

OUTPUT_SLICE_S = 0.5  # how often a wait on output looks at the cancel flag and the deadline


class Roster:
    """Containers by role, their refusals and their timeout timers."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.containers: dict[str, Container] = {}
        self.refused: dict[str, str] = {}  # role -> why it did not start
        self.timers: list[threading.Timer] = []
        self.timed_out: dict[str, float] = {}  # role -> its timeout, for those the timer killed
        self.not_started: set[str] = set()  # start: false, created, no start step yet
        self.tallies: dict[int, object] = {}  # id(check body) -> the tally its judge reads
        self.conditions: dict[tuple[str, str, str | None], EventSeen | LineSearch] = {}
        self.objects: dict[str, CreatedObjects] = {}  # role -> the IPC objects it reported

    def output_for(self, c: ContainerSpec) -> Output:
        """A fresh Output for ``c`` with every tally that will read it attached before the
        container starts (so none misses a line, and none rescans): its checks', the
        ``after`` conditions that wait on it, and the IPC objects it reports creating."""
        out = Output()
        for ch in self.ctx.scenario.all_checks():
            if getattr(ch.body, "since_step", False):
                continue  # attached when its step begins (attach_since_step), to see only later events
            if getattr(ch.body, "container", None) == c.name:
                t = checkmod.tally(ch.body, out)
                if t is not None:
                    self.tallies[id(ch.body)] = t
        for other in self.ctx.scenario.containers:
            for a in other.after:
                key = (a.container, a.condition, a.value)
                if a.container != c.name or key in self.conditions:
                    continue
                if a.condition == "event":
                    self.conditions[key] = EventSeen(a.value or "").attach(out)
                elif a.condition not in ("started", "exited"):
                    self.conditions[key] = LineSearch(a.value or "").attach(out)
        self.objects[c.name] = CreatedObjects().attach(out)
        return out

    def attach_since_step(self, body: object) -> None:
        """``since: step``: the check's tally is attached now, as its step begins, so it
        counts only the events printed from here on (``output_for`` attached no other)."""
        out = self.output(getattr(body, "container", ""))
        if out is not None:
            tally = checkmod.tally(body, out)
            if tally is not None:
                self.tallies[id(body)] = tally

    def namespaces(self) -> dict[str, str]:
        """The IPC namespaces (``ipc:[N]``) the scenario's own containers created, from
        their ``start`` events: ``{namespace: role}`` (joiners and ``ipc: host`` excluded)."""
        found: dict[str, str] = {}
        for c in self.ctx.scenario.containers:
            running = self.containers.get(c.name)
            if running is None or c.ipc == "host" or c.ipc.startswith("container:"):
                continue
            with running.output.changed:
                ns = (running.output.first.get("start") or {}).get("ipcns")
            if isinstance(ns, str) and ns:
                found.setdefault(ns, c.name)
        return found

    def reporters(self, kind: str, ident: object) -> set[str]:
        """The roles whose ``attached``/``opened`` events named IPC object ``ident`` of
        ``kind`` (``shmid``, ``semid``, ``msqid``, ``mq_name``, ``shm_name``)."""
        found = set()
        for role, objs in self.objects.items():
            c = self.containers.get(role)
            if c is None:
                continue
            with c.output.changed:
                if ident in objs.ids.get(kind, ()):
                    found.add(role)
        return found

    def __contains__(self, role: str) -> bool:
        return role in self.containers

    def get(self, role: str) -> Container | None:
        return self.containers.get(role)

    def start(self, c: ContainerSpec, spec: RunSpec) -> Container | None:
        """Create and start ``c`` from ``spec`` and arm its timeout; the engine's refusal is
        recorded (a ``refused`` check may expect it) and gives None."""
        try:
            # start=False only when asked: an engine that never sees start: false needs no such option
            later = {} if c.start else {"start": False}
            container = self.ctx.engine.start_container(spec, c.name, self.output_for(c), **later)
        except ContainerStartError as e:
            self.refused[c.name] = e.reason
            return None
        self.containers[c.name] = container
        if c.start:
            self.arm_timeout(c)
        else:
            self.not_started.add(c.name)
        return container

    def start_later(self, c: ContainerSpec) -> Container:
        """First start of a ``start: false`` container (a ``start`` step); arms its timeout.
        The engine's refusal is recorded and raised (ContainerStartError)."""
        container = self.containers[c.name]
        try:
            container.start()
        except ContainerStartError as e:
            self.refused[c.name] = e.reason
            raise
        self.not_started.discard(c.name)
        self.arm_timeout(c)
        return container

    def arm_timeout(self, c: ContainerSpec) -> None:
        """Kill the container once it has run for its ``timeout``; the scenario then errs.
        A timer, not polling: it fires at the deadline whatever the runner is waiting on."""
        def expire() -> None:
            target = self.containers.get(c.name)
            if target is not None and target.poll_exit() is None:
                self.timed_out[c.name] = c.timeout
                target.kill()

        timer = threading.Timer(c.timeout, expire)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def disarm(self) -> None:
        """Cancel the container timeouts (the scenario is over: teardown or --keep)."""
        for timer in self.timers:
            timer.cancel()

    def refused_after(self, c: ContainerSpec) -> str | None:
        """Why ``c`` cannot start: a container it waits for (``after``) was refused."""
        blocked = next((a.container for a in c.after if a.container in self.refused), None)
        return f"not started: {blocked} was refused" if blocked else None

    def refused_donor(self, donors: dict[str, str]) -> str | None:
        """Why a container cannot start: one whose namespace it joins (``donors``,
        {kind: name}) was refused."""
        found = next(((k, d) for k, d in donors.items() if d in self.refused), None)
        return f"not started: its {found[0]} donor {found[1]} was refused" if found else None

    def wait_condition(self, who: str, a: After) -> None:
        """Block until ``a`` (started/exited/event/output of another container) holds;
        LabctlError if it cannot any more or the scenario deadline passes."""
        ctx = self.ctx
        target = self.containers.get(a.container)
        if target is None:
            raise LabctlError(f"{who} waits for {a.container}, which did not start")
        if a.condition == "started":
            return
        if a.condition == "exited":
            if target.wait_exit(ctx.remaining()) is None:
                raise LabctlError(f"{who} waits for {a.container} to exit; it still runs after the scenario timeout")
            return
        out = target.output
        seen = self.conditions[(a.container, a.condition, a.value)]
        if isinstance(seen, EventSeen):
            pred = lambda: seen.seen is not None  # noqa: E731
            what = f"the event {a.value!r}"
        else:
            pred = lambda: seen.hit is not None  # noqa: E731
            what = f"output matching /{a.value}/"
        while not out.wait_for(pred, min(ctx.deadline, ctx.clock() + OUTPUT_SLICE_S), ctx.clock):
            ctx.check_cancel()
            if out.closed:
                status = target.wait_exit(2.0)
                raise LabctlError(
                    f"{who} waits for {what} from {a.container}, but {a.container} ended "
                    f"({checkmod.describe_exit(status) if status else 'output closed'}) without it")
            if ctx.clock() >= ctx.deadline:
                raise LabctlError(f"{who} waits for {what} from {a.container}: not seen within the scenario timeout")

    # ---- what checks read

    def output(self, role: str) -> Output | None:
        c = self.containers.get(role)
        return c.output if c and role not in self.not_started else None

    def wait_exit(self, role: str, timeout: float) -> ExitStatus | None:
        """Block up to ``timeout`` s for ``role`` to exit, in slices so Ctrl-C is noticed."""
        ctx = self.ctx
        c = self.containers[role]
        end = ctx.clock() + timeout
        while True:
            status = c.wait_exit(max(0.0, min(1.0, end - ctx.clock())))
            if status is not None or ctx.clock() >= end:
                return status
            ctx.check_cancel()

    def logs(self, lines: int = 15) -> dict[str, str]:
        """The last ``lines`` of each container's output, by role (for the report)."""
        return {name: c.output.tail(lines) for name, c in self.containers.items()}
