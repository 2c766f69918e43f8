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


def container_trail(pid: int, proc: str = "/proc", depth: int = 8) -> str:
    """What names the container host pid ``pid`` runs in, for a search by container id: its
    /proc/PID/cgroup (engines put the id in the cgroup path), then the command lines of its
    ancestors up to ``depth`` (conmon's ``-c ID``: a rootless engine on cgroup v1 gives its
    containers no cgroup of their own). Empty when unreadable."""
    parts = [_read(f"{proc}/{pid}/cgroup") or ""]
    for _ in range(depth):
        stat = _read(f"{proc}/{pid}/stat") or ""
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) <= 1:
            break
        pid = int(fields[1])
        parts.append((_read(f"{proc}/{pid}/cmdline") or "").replace("\0", " "))
    return "\n".join(parts)


def container_of(pid: int, ids: list[str], names: dict[str, str], proc: str = "/proc") -> str | None:
    """The name of the container (one of ``ids``, named by ``names``) host pid ``pid`` runs
    in (``container_trail``: its cgroup path, else an ancestor's command line); None when
    unreadable or none matches."""
    text = container_trail(pid, proc)
    if not text.strip():
        return None
    for cid in ids:
        if cid in text:
            return names.get(cid)
    return None
