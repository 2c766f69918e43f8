"""Warnings: live states that match a pitfall the scenario library demonstrates.

Each rule reads a ``Namespace`` (what the probe saw, the members' engine data and
memory) and names the library scenarios that show the pitfall and its fix. One table,
``RULES``; a rule is a function ``Namespace -> list[Warning]``.
"""

from __future__ import annotations

from typing import Callable

from labctl.inspect.findings import Namespace, Warning, human_bytes

DEVSHM_FULL = 0.80  # /dev/shm use above this share of its size
MEMORY_NEAR = 0.80  # memory usage above this share of the limit ...
SHMEM_SHARE = 0.50  # ... of which at least this share is shm/tmpfs pages

SCENARIOS = {
    "orphan-segment": ("orphan-segment", "sigkill-leaks-private-segments"),
    "devshm-full": ("posix-beyond-shm-size", "devshm-crashloop-fills"),
    "donor-restarted": ("donor-restart-splits-sharing",),
    "shm-near-memory-limit": ("shm-oom-killed-writer",),
}


def _warn(code: str, message: str, ns: Namespace, container: str | None = None) -> Warning:
    return Warning(code, SCENARIOS[code], message, ns.key, container)


def orphan_segments(ns: Namespace) -> list[Warning]:
    """A segment nobody has attached (nattch 0, not marked for removal) whose creator is
    gone (or out of the probe's sight): it stays until IPC_RMID or the namespace ends."""
    out = []
    for s in ns.segments:
        if s.get("nattch") != 0 or s.get("dest"):
            continue
        alive = s.get("cpid_alive")
        if alive:
            continue  # its creator still runs and may attach again
        who = s.get("cpid_container")
        creator = (f"its creator (pid {s.get('cpid')}{' in ' + who if who else ''}) is gone" if alive is False
                   else "its creator runs in another pid namespace or is gone")
        key = int(s.get("key") or 0)
        what = "an IPC_PRIVATE segment (key 0): nothing can find it by key again" if key == 0 else f"key {key:#x}"
        out.append(_warn("orphan-segment",
                         f"segment shmid {s.get('shmid')} ({what}, {human_bytes(int(s.get('size') or 0))}) has "
                         f"nattch 0 and {creator}: it stays, charged to memory, until IPC_RMID or the end of "
                         "the namespace (SIGKILL skips every cleanup)", ns))
    return out


def devshm_full(ns: Namespace) -> list[Warning]:
    """/dev/shm more than DEVSHM_FULL used: the next writer gets ENOSPC (write) or SIGBUS (mmap)."""
    fs = ns.devshm_fs or {}
    size, used = int(fs.get("size") or 0), int(fs.get("used") or 0)
    if size <= 0 or used / size <= DEVSHM_FULL:
        return []
    return [_warn("devshm-full",
                  f"/dev/shm is {100 * used / size:.0f} % full ({human_bytes(used)} of {human_bytes(size)}, "
                  f"{len(ns.devshm_files)} files): the next POSIX shm object beyond it fails with ENOSPC or "
                  "SIGBUS; a crash loop that never unlinks fills it this way", ns)]


def donor_restarted(ns: Namespace) -> list[Warning]:
    """Joiners left in the namespace of a donor that restarted (it got a new one)."""
    if ns.kind != "stale" or ns.donor is None:
        return []
    names = ", ".join(m.name for m in ns.members)
    return [_warn("donor-restarted",
                  f"{names} joined {ns.donor.name}, which restarted since (restart count "
                  f"{ns.donor.restart_count}): it is in a new IPC namespace, they still share the old one "
                  "(its segments and /dev/shm); nothing re-joins them: restart them too", ns)]


def shm_near_memory_limit(ns: Namespace) -> list[Warning]:
    """A container close to its memory limit mostly because of shm/tmpfs pages charged
    to it (it touched them first): the next page OOM-kills it, no ENOSPC."""
    out = []
    for m in ns.members:
        mem = m.memory
        if mem is None or not mem.limit or mem.usage is None or mem.shmem is None:
            continue
        if mem.usage >= MEMORY_NEAR * mem.limit and mem.shmem >= SHMEM_SHARE * mem.usage:
            out.append(_warn("shm-near-memory-limit",
                             f"{m.name} uses {human_bytes(mem.usage)} of its {human_bytes(mem.limit)} limit, "
                             f"{human_bytes(mem.shmem)} of it shared memory it touched first: more shm pages "
                             "get it OOM-killed (exit 137), not ENOSPC", ns, m.name))
    return out


RULES: tuple[Callable[[Namespace], list[Warning]], ...] = (
    orphan_segments, devshm_full, donor_restarted, shm_near_memory_limit,
)


def judge(ns: Namespace) -> None:
    """Set ``ns.warnings`` from every rule."""
    ns.warnings = [w for rule in RULES for w in rule(ns)]
