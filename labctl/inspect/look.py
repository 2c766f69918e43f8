"""One look at the engine: select, group, probe and measure in parallel, judge.

``Inspector`` owns one inspect's run id (every probe carries it), its thread pool and
the cleanup: leaving the ``with`` block (normally, on an error or on Ctrl-C) removes
every object labelled with that run id, after giving probes in flight a bounded moment.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Protocol, Sequence

from labctl.errors import LabctlError
from labctl.inspect import gather, pitfalls, probe
from labctl.inspect.findings import Member, Memory, Namespace, Report
from labctl.runtime.labels import RUN_ID
from labctl.runtime import hostproc

SETTLE_S = 5.0  # on leaving: how long probes in flight get before the final sweep


class InspectEngine(gather.Survey, probe.ProbeEngine, Protocol):
    """What an inspect needs from an engine (``labctl.runtime.Engine`` has it all)."""

    def memory_stats(self, ref: str) -> dict | None: ...

    def remove_labelled(self, labels: dict[str, str]) -> tuple[list[str], list[str]]: ...

    def describe(self) -> str: ...


class Inspector:
    """Looks at an engine's containers as often as asked (``look``), then cleans up.

    ``image``: the workload image whose ``shmlab probe`` looks; ``privileged``: allowed
    to start privileged probes for private namespaces (``--allow-privileged``)."""

    def __init__(self, engine: InspectEngine, image: str, *, privileged: bool = False,
                 workers: int = probe.PROBE_WORKERS) -> None:
        self.engine = engine
        self.image = image
        self.privileged = privileged
        self.run_id = uuid.uuid4().hex
        self.cancel = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inspect")
        # memory reads beside the probes, not queued behind them
        self.side_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inspect-memory")
        self._inflight: list[Future] = []
        self._described: str | None = None

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> list[str]:
        """Stop, let probes in flight end (at most SETTLE_S), remove everything labelled
        with this inspect's run id; the errors of that removal (none expected)."""
        self.cancel.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.side_pool.shutdown(wait=False, cancel_futures=True)
        wait([f for f in self._inflight if not f.done()], timeout=SETTLE_S)
        _removed, errors = self.engine.remove_labelled({RUN_ID: self.run_id})
        return errors

    def _submit(self, fn, *args) -> Future:  # noqa: ANN001
        fut = self.pool.submit(fn, *args)
        self._inflight = [f for f in self._inflight if not f.done()] + [fut]
        return fut

    def look(self, names: Sequence[str] = (), project: str | None = None, labels: Sequence[str] = (),
             all: bool = False) -> Report:
        """Select the containers, group them by IPC namespace, probe every namespace that
        can be entered and read every running member's memory, both in parallel; warnings
        from ``pitfalls``. EngineError / UsageError as ``gather.select`` raises them."""
        t0 = time.monotonic()
        if self._described is None:
            self._described = self.engine.describe()
        docs = gather.select(self.engine, names, project, gather.parse_labels(labels), all)
        members = gather.add_donors(self.engine, [gather.to_member(d) for d in docs])
        for m in members:
            m.ipcns = hostproc.ipc_namespace(m.pid) if m.running and m.pid else None
        namespaces = gather.group(members)
        probes = probe.start_probes(self.engine, namespaces, self.image, self.run_id, self.privileged, self.cancel,
                                    self._submit)
        memory = {m.id: self.side_pool.submit(self._memory, m) for m in members if m.running}
        probe.collect(probes)
        for m in members:
            if m.id in memory:
                try:
                    m.memory = memory[m.id].result()
                except LabctlError:
                    m.memory = None
        for ns in namespaces:
            name_pids(ns, members)
            pitfalls.judge(ns)
        return Report(engine=self._described, namespaces=namespaces, privileged=self.privileged,
                      duration_s=round(time.monotonic() - t0, 3),
                      time=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def _memory(self, m: Member) -> Memory | None:
        cg = hostproc.memory_cgroup(m.pid) if m.pid else None
        if cg is not None:
            return Memory(cg.usage, cg.limit or m.mem_limit, cg.shmem, "cgroup")
        stats = self.engine.memory_stats(m.id)
        if not stats:
            return None
        limit = stats.get("limit")
        return Memory(stats.get("usage"), m.mem_limit or (int(limit) if limit and int(limit) < 1 << 62 else None),
                      (stats.get("stats") or {}).get("shmem"), "stats")


def name_pids(ns: Namespace, members: list[Member]) -> None:
    """Add ``cpid_container``/``lpid_container`` (a member's name, or None) to each
    segment: a pid of the probe's pid view belongs to that member; a host pid (privileged
    probe) to the member whose first process it is or whose cgroup holds it."""
    for seg in ns.segments:
        for key in ("cpid", "lpid"):
            seg[f"{key}_container"] = _holder(ns, members, int(seg.get(key) or 0))


def _holder(ns: Namespace, members: list[Member], pid: int) -> str | None:
    if pid <= 0:
        return None
    if not ns.pid_host:
        return ns.pid_view.name if ns.pid_view is not None else None
    for m in members:
        if m.pid == pid:
            return m.name
    return hostproc.container_of(pid, [m.id for m in members], {m.id: m.name for m in members})
