"""The host-IPC guard of a scenario with ``ipc: host`` containers: what the engine host's
IPC namespace held before the run (every kind: SysV segments, semaphore sets and message
queues, POSIX shm in /dev/shm, POSIX message queues in /dev/mqueue), and after it the
removal of the new objects the scenario's own workloads reported creating (a failure or
Ctrl-C may have come before their own removal); anything else new is only reported.

The host is read by one-shot probe containers in ``ipc: host``, so it is the engine
host's namespace wherever labctl itself runs (a container, a remote engine)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from labctl.errors import LabctlError
from labctl.runner.context import RunContext
from labctl.runner.plan import WORKLOAD_USER
from labctl.runtime.engine import Container, RunSpec
from labctl.scenario.kinds.cleanup import CleanupCheck

HOST_PROBE = "host-probe"  # the role of the one-shot host probes


def _key(o: dict) -> str:
    k = o.get("key")
    return f"0x{k & 0xFFFFFFFF:08x}" if isinstance(k, int) else str(k)


def describe_segment(s: dict) -> str:
    return f"host segment key {_key(s)} shmid {s.get('shmid')}"


@dataclass(frozen=True)
class HostObject:
    """One IPC object of the host namespace: ``text`` names it in reports; ``created`` is
    the (kind, id or name) a workload's ``attached``/``opened`` event gives for it;
    ``remove`` the probe arguments that remove it, run as ``owner`` (uid:gid)."""

    text: str
    created: tuple[str, object]
    remove: tuple[str, ...]
    owner: str


# probe key -> (id field, created kind, describe, removal option)
_SYSV = {
    "segments": ("shmid", "shmid", lambda o: describe_segment(o), "--shmid"),
    "sems": ("semid", "semid", lambda o: f"host semaphore set key {_key(o)} semid {o.get('semid')}", "--semid"),
    "queues": ("msqid", "msqid", lambda o: f"host message queue key {_key(o)} msqid {o.get('msqid')}", "--msqid"),
}
SNAPSHOT_ARGS = ["probe", "--segments", "--sems", "--queues", "--devshm", "--mqueues"]


def host_objects(data: dict, default_owner: str = "0:0") -> dict[str, HostObject]:
    """The objects in a probe event of ``SNAPSHOT_ARGS``, by their report text."""
    found: dict[str, HostObject] = {}
    for key, (idf, kind, text, opt) in _SYSV.items():
        for o in data.get(key) or []:
            if isinstance(o, dict) and isinstance(o.get(idf), int):
                owner = f"{o.get('uid', 0)}:{o.get('gid', 0)}"
                found[text(o)] = HostObject(text(o), (kind, o[idf]), ("probe", opt, str(o[idf]), "--rmid"), owner)
    for d in data.get("devshm") or []:
        name = "/" + str(d.get("name"))
        found[f"host /dev/shm{name}"] = HostObject(f"host /dev/shm{name}", ("shm_name", name),
                                                   ("probe", "--shm-unlink", name), default_owner)
    for q in data.get("mqueues") or []:
        name = "/" + str(q.get("name"))
        owner = f"{q.get('uid', 0)}:{q.get('gid', 0)}"
        found[f"host POSIX message queue {name}"] = HostObject(f"host POSIX message queue {name}", ("mq_name", name),
                                                               ("probe", "--mq-unlink", name), owner)
    for key in ("segments", "sems", "queues", "devshm", "mqueues"):
        if data.get(key) is None and data.get(f"{key}_error"):
            raise LabctlError(f"host IPC probe could not read {key}: {data[f'{key}_error']}")
    return found


# created kind -> ipcrm option (SysV) or the host folder its name lives in (POSIX)
_IPCRM = {"shmid": "-m", "semid": "-s", "msqid": "-q"}
_POSIX_DIRS = {"shm_name": "/dev/shm", "mq_name": "/dev/mqueue"}


def removal_commands(objects: list[HostObject]) -> list[str]:
    """The shell commands that remove ``objects`` from the engine host's IPC namespace:
    one ``ipcrm`` for the SysV ones (``-m SHMID``, ``-s SEMID``, ``-q MSQID``, in that
    order) and one ``rm`` for the POSIX ones (``/dev/shm/NAME``, ``/dev/mqueue/NAME``:
    the mqueue file system mounted there, as most distributions do)."""
    sysv = [(opt, o.created[1]) for opt, kind in (("-m", "shmid"), ("-s", "semid"), ("-q", "msqid"))
            for o in objects if o.created[0] == kind]
    paths = [f"{_POSIX_DIRS[o.created[0]]}{o.created[1]}" for kind in _POSIX_DIRS
             for o in objects if o.created[0] == kind]
    out = []
    if sysv:
        out.append("ipcrm " + " ".join(f"{opt} {ident}" for opt, ident in sysv))
    if paths:
        out.append("rm " + " ".join(paths))
    return out


def removal_hint(objects: list[HostObject]) -> str | None:
    """The leftover line that tells how to remove host objects labctl leaves alone."""
    commands = removal_commands(objects)
    if not commands:
        return None
    return ("not removed, as another host process may own them; check, then remove them on the "
            "engine's host (as root or their owner) with: " + " && ".join(commands))


class HostIPCGuard:
    """Host IPC before/after one scenario; ``armed`` when a cleanup check asks for it."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.before: set[str] | None = None
        self._objects: dict[str, HostObject] = {}  # of the last snapshot, by report text
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
        """Every IPC object of the host namespace, one string each (see ``host_objects``)."""
        self._objects = host_objects(self.probe(list(SNAPSHOT_ARGS)), self._workload_user())
        return set(self._objects)

    def _workload_user(self) -> str:
        """Whom a POSIX shm name in /dev/shm belongs to (the probe does not report its
        owner): the scenario's first ``ipc: host`` container's user."""
        c = next((c for c in self.ctx.scenario.containers if c.ipc == "host"), None)
        return (c.user if c is not None and c.user else WORKLOAD_USER)

    def _host_roles(self) -> set[str]:
        return {c.name for c in self.ctx.scenario.containers if c.ipc == "host"}

    def ended(self, containers: Mapping[str, Container]) -> set[str]:
        """Before teardown kills anything: the roles of ``containers`` (role -> container)
        that ended on their own (none when not armed). An object only they reported was
        left by the program (a leak the cleanup check names); one a container still
        running reported may just have lost its removal to the kill."""
        if self.before is None:
            return set()
        exited = set()
        for role, c in containers.items():
            try:
                if c.poll_exit() is not None:
                    exited.add(role)
            except LabctlError:
                exited.add(role)  # gone already: it cannot remove anything any more
        return exited

    def remove_leftovers(self, errors: list[str], reporters: Callable[[str, object], set[str]],
                         ended: set[str]) -> list[str]:
        """After the scenario: remove the new host objects its own workloads reported
        creating or attaching (``reporters(kind, ident)``: the roles whose events named
        it), as their owner (IPC_RMID and unlink need no capability then). Returns what
        the cleanup check reports: the removed objects that only containers which had
        ``ended`` on their own reported (``..., left by ROLE (removed by teardown)``),
        and every other new object, which is not removed since it may belong to the host,
        followed by the commands that remove those (``removal_hint``). A probe failure
        goes to ``errors``."""
        if self.before is None:
            return []
        leaked: list[str] = []
        try:
            new = self.snapshot() - self.before
            for text, o in sorted(self._objects.items()):
                if text not in new:
                    continue
                # only what containers in the host's namespace reported: an id from a
                # private namespace may equal a host object's by chance
                seen_by = reporters(*o.created) & self._host_roles()
                if not seen_by:
                    continue
                self.probe(list(o.remove), user=o.owner)
                if seen_by <= ended:
                    leaked.append(f"{text}, left by {', '.join(sorted(seen_by))} (removed by teardown)")
            new = self.snapshot() - self.before
        except LabctlError as e:
            errors.append(str(e))
            return leaked
        hint = removal_hint([self._objects[t] for t in sorted(new)])
        return leaked + sorted(new) + ([hint] if hint else [])
