"""Carrying out scenarios on the engine: set up, start in order, check, tear down.

One ``ScenarioRun`` per scenario. Everything it creates is labelled with the run id
and the scenario name (``runtime.labels_for``); teardown removes by those labels and
runs whatever happened before it (failure, exception, Ctrl-C).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from labctl import checks as checkmod
from labctl.errors import ContainerStartError, Interrupted, LabctlError
from labctl.output import ExitStatus, Output
from labctl.results import CheckResult, RunResult, ScenarioResult
from labctl.runtime import ROLE, RUN_ID, SCENARIO, Container, Engine, RunSpec, labels_for, process_ipc_namespace
from labctl.scenario.kinds.cleanup import CleanupCheck
from labctl.scenario.model import After, ContainerSpec, Scenario, linked_container

Progress = Callable[[str], None]
WORKLOAD_USER = "65534:65534"  # nobody: the workloads need no privilege
PROBE_CAPS = ["IPC_OWNER", "DAC_READ_SEARCH"]  # read any segment / file, change nothing


def _describe_segment(s: dict) -> str:
    return f"host segment key {s.get('key')} shmid {s.get('shmid')}"


def _slug(text: str) -> str:
    # Not truncated: two long names sharing a prefix must not share objects (scenario
    # names are at most 63 characters, well within what the engine accepts).
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text)


class ScenarioRun:
    """The state of one scenario on the engine; implements ``checks.Observation``."""

    def __init__(self, engine: Engine, scenario: Scenario, run_id: str, image: str, *,
                 cancel: threading.Event | None = None, progress: Progress | None = None,
                 clock: Callable[[], float] = time.monotonic, keep: bool = False) -> None:
        self.engine = engine
        self.keep = keep
        self.scenario = scenario
        self.run_id = run_id
        self.image = image
        self.cancel = cancel or threading.Event()
        self.progress = progress or (lambda _msg: None)
        self.clock = clock
        self.prefix = f"labctl-{run_id[:8]}-{_slug(scenario.name)}"
        self.containers: dict[str, Container] = {}
        self.refused: dict[str, str] = {}
        self.probes: dict[str, Container] = {}
        self.timers: list[threading.Timer] = []
        self.timed_out: dict[str, float] = {}
        self._host_segments: dict[int, dict] = {}
        self._host_ns: str | None = None
        self.binds: dict[str, str] = {}  # volume name -> host directory (tempdir or hostdir)
        self.owned_dirs: list[str] = []  # the tempdirs: labctl made them, labctl deletes them
        self.volume_names: dict[str, str] = {}
        self.host_before: set[str] | None = None
        self._leftovers: list[str] = []
        self.deadline = clock() + scenario.timeout

    # ---------------------------------------------------------------- naming and labels

    def _labels(self, role: str, user: dict[str, str] | None = None) -> dict[str, str]:
        return labels_for(self.run_id, self.scenario.name, role, user, keep=self.keep)

    def _name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted()

    # ---------------------------------------------------------------- set-up

    def setup_storage(self) -> None:
        """Create per-run volumes and temp dirs; open them to the non-root workload user."""
        base = os.path.dirname(os.path.abspath(self.scenario.file))
        to_open = []
        for v in self.scenario.volumes:
            if v.type in ("volume", "tmpfs-volume"):
                name = f"{self.prefix}-{v.name}"
                opts = None
                if v.type == "tmpfs-volume":
                    o = "mode=1777" + (f",size={v.size}" if v.size else "")
                    opts = {"type": "tmpfs", "device": "tmpfs", "o": o}
                else:
                    to_open.append(v.name)
                self.engine.create_volume(name, self._labels(f"volume-{v.name}"), opts)
                self.volume_names[v.name] = name
            elif v.type == "tempdir":
                path = tempfile.mkdtemp(prefix=f"{self.prefix}-{v.name}-")
                os.chmod(path, 0o1777)
                self.binds[v.name] = path
                self.owned_dirs.append(path)
            else:
                self.binds[v.name] = os.path.normpath(os.path.join(base, v.path or "."))
        if to_open:
            # A fresh named volume is root-owned 0755; open it (sticky, world-writable)
            # so the non-root workloads can create their files, as /tmp is.
            spec = RunSpec(
                name=self._name("prep"), image=self.image, labels=self._labels("prep"),
                command=["prep", "--chmod", "1777", *[f"/v/{n}" for n in to_open]], user="0:0",
                mounts=[("volume", self.volume_names[n], f"/v/{n}", False) for n in to_open],
            )
            prep = self.engine.start_container(spec, "prep")
            status = prep.wait_exit(max(1.0, self.deadline - self.clock()))
            if status is None or status.code != 0:
                raise LabctlError(f"preparing volumes failed: {status}; {prep.output.tail(5)}")
            self.engine.remove_labelled({RUN_ID: self.run_id, SCENARIO: self.scenario.name, "io.labctl.role": "prep"})

    def run_spec(self, c: ContainerSpec) -> RunSpec:
        """The engine-level description of scenario container ``c`` (hardened by default)."""
        command: list[str] | None
        entrypoint: list[str] | None
        user: str | None
        if c.workload:
            image, command, entrypoint = self.image, [c.workload, *c.args], None
            user = c.user or WORKLOAD_USER
        else:
            image, command = c.image or "", list(c.command) if c.command is not None else None
            entrypoint = list(c.entrypoint) if c.entrypoint is not None else None
            user = c.user
        mounts = []
        for m in c.mounts:
            if m.tmpfs:
                continue
            if m.source in self.volume_names:
                mounts.append(("volume", self.volume_names[m.source], m.target, m.read_only))
            elif m.source in self.binds:
                mounts.append(("bind", self.binds[m.source], m.target, m.read_only))
        ipc, network, pid = (self._engine_mode(mode) for mode in (c.ipc, c.network, c.pid))
        return RunSpec(
            name=self._name(c.name), image=image, labels=self._labels(c.name, dict(c.labels)), command=command,
            entrypoint=entrypoint, ipc_mode=ipc, network_mode=network, user=user, read_only=c.read_only,
            cap_add=list(c.cap_add), privileged=c.privileged, pid_mode=pid, devices=list(c.devices),
            shm_size=c.shm_size, sysctls=dict(c.sysctls), environment=dict(c.env), mounts=mounts,
            tmpfs={m.target: "mode=1777" for m in c.mounts if m.tmpfs},
        )

    @staticmethod
    def _donors(c: ContainerSpec) -> dict[str, str]:
        """The containers whose namespaces ``c`` joins: {kind: name} for ipc, network, pid."""
        return {("IPC" if key == "ipc" else key): name for key, name in c.links.items()}

    def _engine_mode(self, mode: str | None) -> str | None:
        """A namespace mode as the engine takes it: ``container:NAME`` names the container."""
        donor = linked_container(mode)
        return f"container:{self._name(donor)}" if donor is not None else mode

    def _order(self) -> list[ContainerSpec]:
        """Containers in a start order that honours ``after`` and namespace donors
        (validation rejected cycles)."""
        done: list[ContainerSpec] = []
        names: set[str] = set()
        pending = list(self.scenario.containers)
        while pending:
            for c in pending:
                deps = {a.container for a in c.after} | set(self._donors(c).values())
                if deps <= names:
                    done.append(c)
                    names.add(c.name)
                    pending.remove(c)
                    break
            else:
                raise LabctlError("start order has a cycle")  # validation prevents this
        return done

    def start_all(self) -> None:
        """Start every container once its ``after`` conditions hold; record refusals."""
        probed = self._probed_namespaces()
        for c in self._order():
            self._check_cancel()
            blocked = next((a.container for a in c.after if a.container in self.refused), None)
            if blocked:
                self.refused[c.name] = f"not started: {blocked} was refused"
                continue
            for a in c.after:
                self._wait_condition(c.name, a)
            refused_donor = next(((k, d) for k, d in self._donors(c).items() if d in self.refused), None)
            if refused_donor:
                self.refused[c.name] = f"not started: its {refused_donor[0]} donor {refused_donor[1]} was refused"
                continue
            self.progress(f"{self.scenario.name}: starting {c.name}")
            try:
                self.containers[c.name] = self.engine.start_container(self.run_spec(c), c.name)
            except ContainerStartError as e:
                self.refused[c.name] = e.reason
                continue
            self._arm_timeout(c)
            if c.name in probed:
                self._start_probe(c.name)

    def _arm_timeout(self, c: ContainerSpec) -> None:
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

    def _probed_namespaces(self) -> set[str]:
        owners = set()
        for ch in self.scenario.checks:
            if ch.kind == "segment":
                owners.add(self.scenario.ipc_owner(ch.body.in_))  # type: ignore[union-attr]
        return owners

    def _start_probe(self, owner: str) -> None:
        # Joined as soon as the owner runs, so it can be probed even after the owner
        # exits; note that the probe then keeps the namespace (and its segments) alive.
        c = self.scenario.container(owner)
        ipc = "host" if c.ipc == "host" else f"container:{self.containers[owner].name}"
        spec = RunSpec(name=self._name(f"probe-{owner}"), image=self.image, labels=self._labels(f"probe-{owner}"),
                       command=["hold"], ipc_mode=ipc, user="0:0", cap_add=PROBE_CAPS)
        try:
            self.probes[owner] = self.engine.start_container(spec, f"probe-{owner}")
        except ContainerStartError as e:
            self.refused[f"probe-{owner}"] = e.reason

    def _wait_condition(self, who: str, a: After) -> None:
        target = self.containers.get(a.container)
        if target is None:
            raise LabctlError(f"{who} waits for {a.container}, which did not start")
        remaining = self.deadline - self.clock()
        if a.condition == "started":
            return
        if a.condition == "exited":
            if target.wait_exit(remaining) is None:
                raise LabctlError(f"{who} waits for {a.container} to exit; it still runs after the scenario timeout")
            return
        out = target.output
        if a.condition == "event":
            pred = lambda: any(e.get("event") == a.value for e in out.events)  # noqa: E731
            what = f"the event {a.value!r}"
        else:
            rx = re.compile(a.value or "")
            pred = lambda: any(rx.search(line) for line in out.stdout + out.stderr)  # noqa: E731
            what = f"output matching /{a.value}/"
        while not out.wait_for(pred, min(self.deadline, self.clock() + 0.5), self.clock):
            self._check_cancel()
            if out.closed:
                status = target.wait_exit(2.0)
                raise LabctlError(
                    f"{who} waits for {what} from {a.container}, but {a.container} ended "
                    f"({checkmod.describe_exit(status) if status else 'output closed'}) without it")
            if self.clock() >= self.deadline:
                raise LabctlError(f"{who} waits for {what} from {a.container}: not seen within the scenario timeout")

    # ---------------------------------------------------------------- Observation

    def output(self, container: str) -> Output | None:
        self._check_cancel()
        c = self.containers.get(container)
        return c.output if c else None

    def refusal(self, container: str) -> str | None:
        return self.refused.get(container)

    def wait_exit(self, container: str, timeout: float) -> ExitStatus | None:
        c = self.containers[container]
        end = self.clock() + timeout
        while True:  # in slices, so Ctrl-C is noticed
            status = c.wait_exit(max(0.0, min(1.0, end - self.clock())))
            if status is not None or self.clock() >= end:
                return status
            self._check_cancel()

    def ipc_namespace(self, container: str) -> str | None:
        if container == "host":
            if self._host_ns is None:
                self._host_ns = str(self._host_probe(["probe", "--ns"]).get("ipcns") or "") or None
            return self._host_ns
        c = self.containers.get(container)
        if c is None:
            return None
        with c.output.changed:
            for e in c.output.events:
                if e.get("event") == "start" and e.get("ipcns"):
                    return str(e["ipcns"])
        pid = c.pid() if c.poll_exit() is None else None
        return process_ipc_namespace(pid) if pid else None

    def _probe(self, holder: Container, args: list[str], what: str) -> dict:
        code, text = holder.exec(["/shmlab", *args])
        for line in text.splitlines():
            if line.startswith("{"):
                data = json.loads(line)
                if data.get("event") == "probe":
                    return data
        raise LabctlError(f"probe of {what} failed (exit {code}): {text.strip()[-300:]}")

    def probe_ipc(self, container: str, args: list[str]) -> dict:
        self._check_cancel()
        owner = self.scenario.ipc_owner(container)
        holder = self.probes.get(owner)
        if holder is None:
            why = self.refused.get(f"probe-{owner}") or self.refused.get(owner) or "its owner did not start"
            raise LabctlError(f"cannot probe the IPC namespace of {container}: {why}")
        return self._probe(holder, args, f"the IPC namespace of {container}")

    def probe_file(self, container: str, args: list[str]) -> dict:
        self._check_cancel()
        role = f"files-{container}"
        holder = self.probes.get(role)
        if holder is None:
            target = self.containers.get(container)
            if target is None:
                raise LabctlError(f"cannot look at the files of {container}: it did not start")
            spec = RunSpec(name=self._name(role), image=self.image, labels=self._labels(role), command=["hold"],
                           user="0:0", cap_add=PROBE_CAPS, volumes_from=[target.name])
            holder = self.probes[role] = self.engine.start_container(spec, role)
        return self._probe(holder, args, f"the files of {container}")

    def leftovers(self) -> list[str]:
        return list(self._leftovers)

    @property
    def uses_host_ipc(self) -> bool:
        return any(c.ipc == "host" for c in self.scenario.containers)

    def _host_probe(self, args: list[str], user: str = "0:0") -> dict:
        """Run ``shmlab ARGS`` once in the engine host's IPC namespace and return its probe
        event: what the host shows, wherever labctl itself runs (a container, a remote engine)."""
        role = "host-probe"
        spec = RunSpec(name=self._name(f"{role}-{uuid.uuid4().hex[:6]}"), image=self.image, labels=self._labels(role),
                       command=args, ipc_mode="host", user=user)
        holder = self.engine.start_container(spec, role)
        try:
            status = holder.wait_exit(max(5.0, self.deadline - self.clock()))
            data = next((e for e in holder.output.events if e.get("event") == "probe"), None)
            if status is None or data is None:
                raise LabctlError(f"host IPC probe failed: {holder.output.tail(5)}")
        finally:
            self.engine.remove_labelled({RUN_ID: self.run_id, SCENARIO: self.scenario.name, ROLE: role})
        return data

    def host_ipc_snapshot(self) -> set[str]:
        """The host's SysV segments and /dev/shm entries, one string each."""
        data = self._host_probe(["probe", "--segments", "--devshm"])
        self._host_segments = {int(s["shmid"]): s for s in data.get("segments", []) if "shmid" in s}
        seen = {_describe_segment(s) for s in data.get("segments", [])}
        return seen | {f"host /dev/shm/{d.get('name')}" for d in data.get("devshm", [])}

    def _our_shmids(self) -> set[int]:
        """Segments this scenario's workloads reported attaching (their ``attached`` events)."""
        ids = set()
        for c in self.containers.values():
            with c.output.changed:
                ids |= {int(e["shmid"]) for e in c.output.events
                        if e.get("event") == "attached" and isinstance(e.get("shmid"), int)}
        return ids

    def _remove_host_leftovers(self, errors: list[str]) -> list[str]:
        """After a host-IPC scenario: remove the new host segments that its own workloads
        attached (a failure or Ctrl-C may have come before their IPC_RMID); anything else
        new is only reported, since it may belong to the host. Returns what is still new."""
        assert self.host_before is not None
        try:
            new = self.host_ipc_snapshot() - self.host_before
            ours = [s for shmid, s in self._host_segments.items()
                    if shmid in self._our_shmids() and _describe_segment(s) in new]
            for seg in ours:  # as the segment's owner: IPC_RMID needs no capability then
                self._host_probe(["probe", "--shmid", str(seg["shmid"]), "--rmid"],
                                 user=f"{seg.get('uid', 0)}:{seg.get('gid', 0)}")
            if ours:
                new = self.host_ipc_snapshot() - self.host_before
        except LabctlError as e:
            errors.append(str(e))
            return []
        return sorted(new)

    # ---------------------------------------------------------------- teardown

    def teardown(self) -> list[str]:
        """Remove everything of this scenario by label, delete temp dirs; returns problems."""
        errors: list[str] = []
        try:
            errors += self.engine.remove_labelled({RUN_ID: self.run_id, SCENARIO: self.scenario.name})[1]
        finally:
            # Also when an interrupt lands in the removal above: the CLI then removes the
            # run's engine objects by label, but only this object knows its host dirs.
            for path in self.owned_dirs:
                shutil.rmtree(path, ignore_errors=True)
                if os.path.exists(path):
                    errors.append(f"temp dir {path}")
        new = self._remove_host_leftovers(errors) if self.host_before is not None else []
        left = self.engine.find({RUN_ID: self.run_id, SCENARIO: self.scenario.name})
        self._leftovers = [f"{kind[:-1]} {n}" for kind, names in left.items() for n in names] + [
            f"temp dir {p}" for p in self.owned_dirs if os.path.exists(p)] + new
        return errors

    def logs(self) -> dict[str, str]:
        return {name: c.output.tail(15) for name, c in self.containers.items()}


def run_scenario(engine: Engine, scenario: Scenario, run_id: str, image: str, *, keep: bool = False,
                 cancel: threading.Event | None = None, progress: Progress | None = None) -> ScenarioResult:
    """Carry out one scenario and return its result; raises Interrupted after teardown on Ctrl-C."""
    t0 = time.monotonic()
    run = ScenarioRun(engine, scenario, run_id, image, cancel=cancel, progress=progress, keep=keep)
    result = ScenarioResult(scenario.name, scenario.file, "passed", tags=scenario.tags)
    interrupted: Interrupted | None = None
    try:
        if run.uses_host_ipc and any(isinstance(c.body, CleanupCheck) and c.body.host_ipc for c in scenario.checks):
            run.host_before = run.host_ipc_snapshot()
        run.setup_storage()
        run.start_all()
        for check in scenario.checks:
            if isinstance(check.body, CleanupCheck):
                continue
            run._check_cancel()
            result.checks.append(checkmod.evaluate(check, run, hard_deadline=run.deadline))
            run._check_cancel()  # evaluate() reports an Interrupted inside a check as its error
    except Interrupted as e:
        interrupted = e
        result.status, result.message = "error", "interrupted"
    except LabctlError as e:
        result.status, result.message = "error", str(e)
    finally:
        run.disarm()
        result.logs = run.logs()
        if not keep:
            problems = run.teardown()
            if problems and result.status == "passed":
                result.status, result.message = "error", "teardown: " + "; ".join(problems)
    if interrupted:
        raise interrupted
    for check in scenario.checks:
        if isinstance(check.body, CleanupCheck):
            if keep:
                result.checks.append(CheckResult(check.name, "skipped", "--keep: nothing was torn down"))
            else:
                result.checks.append(checkmod.evaluate(check, run))
    if run.timed_out and result.status != "error":
        result.status = "error"
        result.message = "; ".join(f"container {name!r} ran past its timeout ({secs:g}s) and was killed"
                                   for name, secs in run.timed_out.items())
    if result.status == "passed":
        if any(c.status == "failed" for c in result.checks):
            result.status = "failed"
        elif any(c.status == "error" for c in result.checks):
            result.status = "error"  # a check that could not be evaluated is not a verdict
            result.message = next(c.message for c in result.checks if c.status == "error")
    result.duration_s = time.monotonic() - t0
    if result.status == "passed":
        result.logs = {}
    return result


def run_all(engine: Engine, scenarios: list[Scenario], image: str, *, run_id: str, jobs: int = 1, keep: bool = False,
            cancel: threading.Event | None = None, progress: Progress | None = None,
            on_result: Callable[[ScenarioResult], None] | None = None) -> RunResult:
    """Run scenarios, ``jobs`` at a time (host-IPC scenarios one at a time: they share keys)."""
    t0 = time.monotonic()
    cancel = cancel or threading.Event()
    host_lock = threading.Lock()
    run = RunResult(run_id)
    lock = threading.Lock()

    def one(s: Scenario) -> ScenarioResult:
        if cancel.is_set():
            return ScenarioResult(s.name, s.file, "skipped", message="interrupted", tags=s.tags)
        uses_host = any(c.ipc == "host" for c in s.containers)
        if uses_host:
            with host_lock:
                res = run_scenario(engine, s, run_id, image, keep=keep, cancel=cancel, progress=progress)
        else:
            res = run_scenario(engine, s, run_id, image, keep=keep, cancel=cancel, progress=progress)
        with lock:
            if on_result:
                on_result(res)
        return res

    results: dict[str, ScenarioResult] = {}
    if jobs <= 1:
        for s in scenarios:
            results[s.name] = one(s)
    else:
        _run_pool(engine, scenarios, one, jobs, run_id, cancel, results)
    run.scenarios = [results[s.name] for s in scenarios if s.name in results]
    run.duration_s = time.monotonic() - t0
    return run


JOIN_S = 5.0  # after an interrupt, how long worker threads get to wind down


def _run_pool(engine: Engine, scenarios: list[Scenario], one: Callable[[Scenario], ScenarioResult], jobs: int,
              run_id: str, cancel: threading.Event, results: dict[str, ScenarioResult]) -> None:
    """Run ``one`` over the scenarios in ``jobs`` worker threads, filling ``results``.

    Signals reach only the main thread. When one interrupts the wait here, the workers
    are told (``cancel``), the run is torn down by label from this thread (which also
    ends the workers' waits on containers that no longer exist), the workers get a
    bounded join, and a second sweep takes whatever a worker created meanwhile.
    ``with ThreadPoolExecutor`` is not used: its exit would wait for every worker."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scenario")
    futures = {s.name: pool.submit(one, s) for s in scenarios}
    errors: list[BaseException] = []
    try:
        for name, f in futures.items():
            try:
                results[name] = f.result()
            except Interrupted:
                raise
            except Exception as e:  # noqa: BLE001 - re-raised below after all finished
                errors.append(e)
        pool.shutdown(wait=True)
    except BaseException:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        engine.remove_labelled({RUN_ID: run_id})
        deadline = time.monotonic() + JOIN_S
        for t in list(getattr(pool, "_threads", ())):
            t.join(max(0.0, deadline - time.monotonic()))
        engine.remove_labelled({RUN_ID: run_id})
        raise
    if errors:
        raise errors[0]
