"""What the leak guard looks at besides the engine: every IPC object kind in the host's
IPC namespace, and the IPC namespaces that processes hold.

* SysV shared memory, semaphore sets and message queues: ``/proc/sysvipc/{shm,sem,msg}``
  (this process's namespace: the host's); removed with ``sysv_ipc`` (IPC_RMID).
* POSIX shared memory: the entries of ``/dev/shm``; removed with unlink.
* POSIX message queues: the entries of an mqueue filesystem for this namespace
  (``/dev/mqueue`` when mounted, else one this module mounts once in a temp dir, which
  needs root, as CI has); removed with unlink (what mq_unlink does).
* IPC namespaces: ``/proc/PID/ns/ipc`` of every process, so a namespace a test created
  and left alive (a holder nobody removed) is seen with its holders.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sysv_ipc

DEV_SHM = Path("/dev/shm")
# Podman's lock segments (libpod_lock, libpod_rootless_lock_UID): the engine's, never a test's
ENGINE_LOCKS = ("libpod_lock", "libpod_rootless_lock")
CONTAINER_ID = re.compile(r"([0-9a-f]{64})")


@dataclass(frozen=True)
class IpcObject:
    """One host IPC object: ``ident`` is unique per kind and stable while it lives;
    ``users`` the pids the kernel or /proc name as using it (shm: creator; sem: last
    operation; msg: last send and receive; /dev/shm and mqueue entries: processes that
    have it open or mapped) - an object a live process still uses belongs to a program
    (another test on a shared machine), not to a leak."""

    kind: str
    ident: str
    text: str
    users: tuple[int, ...]
    remove: Callable[[], None]


def _table(name: str) -> list[dict[str, int]]:
    try:
        lines = Path(f"/proc/sysvipc/{name}").read_text().splitlines()
    except OSError:
        return []
    if not lines:
        return []
    head = lines[0].split()
    rows = []
    for line in lines[1:]:
        cols = line.split()
        if len(cols) == len(head):
            rows.append({h: int(v, 8 if h == "perms" else 10) for h, v in zip(head, cols)})
    return rows


def _ignore_gone(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except (sysv_ipc.ExistentialError, FileNotFoundError):
            pass
    return run


_mqueue_dir: str | None = None


def mqueue_dir() -> str:
    """A mount of this namespace's mqueue filesystem: /dev/mqueue, or one made here.
    Raises RuntimeError (the guard then fails, it never skips) when neither is possible."""
    global _mqueue_dir
    if _mqueue_dir is None:
        if os.path.ismount("/dev/mqueue"):
            _mqueue_dir = "/dev/mqueue"
        else:
            path = tempfile.mkdtemp(prefix="labctl-mqueue-")
            done = subprocess.run(["mount", "-t", "mqueue", "mqueue", path], capture_output=True, text=True)
            if done.returncode != 0:
                os.rmdir(path)
                raise RuntimeError(f"cannot see POSIX message queues: /dev/mqueue is not mounted and "
                                   f"'mount -t mqueue' failed ({done.stderr.strip()}); run the tests as root")
            _mqueue_dir = path

            def unmount() -> None:
                subprocess.run(["umount", path], capture_output=True)
                os.rmdir(path)
            atexit.register(unmount)
    return _mqueue_dir


def _sem_pid(semid: int) -> tuple[int, ...]:
    try:
        for key in [k for k in _table("sem") if k["semid"] == semid]:
            return (sysv_ipc.Semaphore(key["key"]).last_pid,) if key["key"] else ()
    except sysv_ipc.Error:
        pass
    return ()


def _held_files() -> dict[str, list[int]]:
    """Paths open (``/proc/PID/fd``; an mqueue descriptor reads ``/NAME``) or mapped
    (``/proc/PID/maps``) by each process, other than this one."""
    held: dict[str, list[int]] = {}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    held.setdefault(os.readlink(fd.path), []).append(pid)
                except OSError:
                    continue
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    if "/dev/shm/" in line:
                        held.setdefault(line.split(None, 5)[-1].strip().removesuffix(" (deleted)"), []).append(pid)
        except OSError:
            continue
    return held


def host_objects() -> dict[str, IpcObject]:
    """Every IPC object of this process's (the host's) namespace, by kind:ident."""
    found: dict[str, IpcObject] = {}

    def add(o: IpcObject) -> None:
        found[f"{o.kind}:{o.ident}"] = o

    for r in _table("shm"):
        add(IpcObject("shm", str(r["shmid"]), f"host SysV shm key=0x{r['key'] & 0xFFFFFFFF:08x} shmid={r['shmid']} "
                      f"cpid={r['cpid']} nattch={r['nattch']}", (r["cpid"],),
                      _ignore_gone(lambda i=r["shmid"]: sysv_ipc.remove_shared_memory(i))))
    for r in _table("sem"):
        add(IpcObject("sem", str(r["semid"]), f"host SysV semaphore set key=0x{r['key'] & 0xFFFFFFFF:08x} "
                      f"semid={r['semid']} uid={r['uid']}", _sem_pid(r["semid"]),
                      _ignore_gone(lambda i=r["semid"]: sysv_ipc.remove_semaphore(i))))
    for r in _table("msg"):
        add(IpcObject("msg", str(r["msqid"]), f"host SysV message queue key=0x{r['key'] & 0xFFFFFFFF:08x} "
                      f"msqid={r['msqid']} messages={r['qnum']}", (r["lspid"], r["lrpid"]),
                      _ignore_gone(lambda i=r["msqid"]: sysv_ipc.remove_message_queue(i))))
    held = _held_files()
    for p in sorted(DEV_SHM.iterdir()) if DEV_SHM.is_dir() else []:
        if p.name.startswith(ENGINE_LOCKS):
            continue  # the engine's own lock segments (a rootless Podman makes its own on first use)
        remove = (lambda p=p: shutil.rmtree(p)) if p.is_dir() and not p.is_symlink() else p.unlink
        add(IpcObject("devshm", p.name, f"host /dev/shm/{p.name}", tuple(held.get(str(p), ())),
                      _ignore_gone(remove)))
    mq = Path(mqueue_dir())
    for p in sorted(mq.iterdir()):
        add(IpcObject("mqueue", p.name, f"host POSIX message queue /{p.name}", tuple(held.get(f"/{p.name}", ())),
                      _ignore_gone(p.unlink)))
    return found


def namespaces() -> dict[str, list[int]]:
    """IPC namespace id (``ipc:[N]``) -> the pids in it, for every process we can see."""
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found.setdefault(os.readlink(f"/proc/{entry.name}/ns/ipc"), []).append(int(entry.name))
            except OSError:
                continue
    return found


def container_of(pid: int) -> str | None:
    """The 64-hex id of the container ``pid`` runs in (from its cgroup, else from its conmon
    ancestor's command line: a rootless engine on cgroup v1 gives containers no cgroup), if any."""
    from labctl.runtime.hostproc import container_trail

    m = CONTAINER_ID.search(container_trail(pid))
    return m.group(1) if m else None


def namespace_objects(pid: int) -> str:
    """What the IPC namespace of ``pid`` holds, one line per kind (``nsenter``)."""
    parts = []
    for kind in ("shm", "sem", "msg"):
        done = subprocess.run(["nsenter", f"--ipc=/proc/{pid}/ns/ipc", "cat", f"/proc/sysvipc/{kind}"],
                              capture_output=True, text=True)
        rows = max(0, len(done.stdout.splitlines()) - 1) if done.returncode == 0 else "?"
        parts.append(f"{kind} {rows}")
    return ", ".join(parts)
