"""What the host's /proc and cgroup file system say about a container's process.

Readable when labctl runs on the engine's host with enough privilege (root, or the
engine's user); every function answers None otherwise, and callers fall back to what
the engine's API says. No engine call here: the pids come from ``docker inspect``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"


def ipc_namespace(pid: int, proc: str = "/proc") -> str | None:
    """The IPC namespace (``ipc:[N]``) of host pid ``pid`` (readlink of /proc/PID/ns/ipc),
    or None when that is not readable from here."""
    try:
        return os.readlink(f"{proc}/{pid}/ns/ipc")
    except OSError:
        return None


@dataclass(frozen=True)
class MemoryCgroup:
    """One memory cgroup's figures in bytes: ``usage`` (memory.usage_in_bytes, v1, or
    memory.current, v2: page cache and shmem included), ``limit`` (None: unlimited) and
    ``shmem`` (memory.stat ``shmem``: SysV and POSIX shared memory and tmpfs pages
    charged to this cgroup, i.e. first touched by its processes)."""

    usage: int
    limit: int | None
    shmem: int | None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _stat_value(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


# Above this a v1 limit means "none" (the kernel's PAGE_COUNTER_MAX rounded to pages)
_UNLIMITED = 1 << 62


def memory_cgroup(pid: int, proc: str = "/proc", root: str = CGROUP_ROOT) -> MemoryCgroup | None:
    """The memory cgroup of host pid ``pid`` (its line in /proc/PID/cgroup: ``N:memory:PATH``
    on cgroup v1, ``0::PATH`` on v2), read under ``root``; None when unreadable."""
    text = _read(f"{proc}/{pid}/cgroup")
    if text is None:
        return None
    v1 = v2 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            v1 = parts[2]
        elif parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
    if v1 is not None:
        base = f"{root}/memory{v1}"
        usage, limit, stat = _read(f"{base}/memory.usage_in_bytes"), _read(f"{base}/memory.limit_in_bytes"), \
            _read(f"{base}/memory.stat")
    elif v2 is not None:
        base = f"{root}{v2}"
        usage, limit, stat = _read(f"{base}/memory.current"), _read(f"{base}/memory.max"), _read(f"{base}/memory.stat")
    else:
        return None
    if usage is None or not usage.strip().isdigit():
        return None
    lim = int(limit) if limit is not None and limit.strip().isdigit() else None
    if lim is not None and lim >= _UNLIMITED:
        lim = None
    return MemoryCgroup(int(usage), lim, _stat_value(stat, "shmem") if stat else None)


def container_of(pid: int, ids: list[str], names: dict[str, str], proc: str = "/proc") -> str | None:
    """The name of the container (one of ``ids``, named by ``names``) whose cgroup holds
    host pid ``pid``, read from /proc/PID/cgroup (engines put the container id in the
    cgroup path); None when unreadable or none matches."""
    text = _read(f"{proc}/{pid}/cgroup")
    if text is None:
        return None
    for cid in ids:
        if cid in text:
            return names.get(cid)
    return None
