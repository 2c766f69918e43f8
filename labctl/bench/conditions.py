"""Which machine the benchmark ran on, and what else it was doing meanwhile: load
average and steal time.

Read from /proc at the start and the end of a run, so a reader of the figures can
tell a quiet machine from a busy one (steal time: what the hypervisor gave to other
guests while this one wanted to run). Pure parsing over text, unit-testable.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """Load averages (1, 5, 15 min) and the aggregate CPU counters (USER_HZ ticks)."""

    loadavg: tuple[float, float, float]
    total_ticks: int
    steal_ticks: int | None  # None where /proc/stat has no steal column (old kernels)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def snapshot(loadavg_text: str | None = None, stat_text: str | None = None) -> Snapshot:
    """Parse ``/proc/loadavg`` and the ``cpu`` line of ``/proc/stat`` (read now when not
    given). Unreadable values come back as zeros / None, never an exception."""
    la = (loadavg_text if loadavg_text is not None else _read("/proc/loadavg")).split()
    try:
        loads = (float(la[0]), float(la[1]), float(la[2]))
    except (IndexError, ValueError):
        loads = (0.0, 0.0, 0.0)
    total, steal = 0, None
    for line in (stat_text if stat_text is not None else _read("/proc/stat")).splitlines():
        cols = line.split()
        if cols and cols[0] == "cpu":
            nums = [int(x) for x in cols[1:] if x.isdigit()]
            # user nice system idle iowait irq softirq steal guest guest_nice: guests are
            # already inside user/nice, so the total is the first eight
            total = sum(nums[:8])
            steal = nums[7] if len(nums) >= 8 else None
            break
    return Snapshot(loads, total, steal)


def summary(start: Snapshot, end: Snapshot) -> dict:
    """The JSON ``conditions``: load averages at start and end, and the share of CPU
    time stolen in between (percent, None when unknown)."""
    steal_pct = None
    if start.steal_ticks is not None and end.steal_ticks is not None and end.total_ticks > start.total_ticks:
        steal_pct = round(100.0 * (end.steal_ticks - start.steal_ticks) / (end.total_ticks - start.total_ticks), 2)

    def la(s: Snapshot) -> dict:
        return {"loadavg_1m": s.loadavg[0], "loadavg_5m": s.loadavg[1], "loadavg_15m": s.loadavg[2]}

    return {"start": la(start), "end": la(end), "steal_pct": steal_pct}


@dataclass(frozen=True)
class Machine:
    """Where the figures come from."""

    cpu: str
    kernel: str
    cores: int
    arch: str = ""


def this_machine(cpuinfo: str | None = None) -> Machine:
    """CPU model (``/proc/cpuinfo``), kernel release and core count of this host; the
    containers share the kernel, so it is theirs too."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    cpu = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            cpu = value.strip()
            break
    return Machine(cpu or platform.processor() or "unknown", platform.release(), os.cpu_count() or 1, platform.machine())
