"""``objects``: what an IPC namespace holds, counted by a probe inside it."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import COUNT, Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, probe_ref
from labctl.scenario.model import Expect
from labctl.scenario.spec import PDict, Size

# the probe's fields, in the order reports show them
COUNTS = ("shm", "sem", "msg", "devshm_files", "devshm_bytes", "devshm_capacity")


@dataclass(frozen=True)
class ObjectsCheck:
    """Counts in the IPC namespace of ``in_``: SysV segments (``shm``), semaphore sets
    (``sem``), message queues (``msg``), /dev/shm entries (``devshm_files``) and the bytes
    they occupy in the tmpfs (``devshm_bytes``: allocated, what fills it), and the tmpfs's
    capacity (``devshm_capacity``: statvfs blocks x fragment size, what ``shm_size`` sets;
    as ``df /dev/shm`` shows it). Each an Expect."""

    in_: str
    expects: tuple[tuple[str, Expect], ...]


SPEC = Obj({
    "in": F(Ref("a container living in a shareable or host IPC namespace"), True),
    "shm": F(ExpectT(COUNT, "SysV shared-memory segments: N or {OP: N}")),
    "sem": F(ExpectT(COUNT, "SysV semaphore sets")),
    "msg": F(ExpectT(COUNT, "SysV message queues")),
    "devshm_files": F(ExpectT(COUNT, "entries in /dev/shm")),
    "devshm_bytes": F(ExpectT(Size(maximum=2**44), "bytes allocated in /dev/shm (sizes take units)")),
    "devshm_capacity": F(ExpectT(Size(maximum=2**44), "the size of the /dev/shm tmpfs, what shm_size sets "
                                                      "(sizes take units)")),
}, "what an IPC namespace holds (SysV objects, /dev/shm), counted by a probe inside it",
    extra={"anyOf": [{"required": [k]} for k in COUNTS]})


def build(b: Builder, d: PDict, path: str) -> tuple[ObjectsCheck, str]:
    where = probe_ref(b, d, path)
    expects = tuple((k, get(d, k)) for k in COUNTS if isinstance(get(d, k), Expect))
    if not any(k in d.node.value for k in COUNTS):
        b.ctx.at(d.node, path, f"objects needs at least one of {', '.join(COUNTS)}")
    return ObjectsCheck(where, expects), f"objects in {where}"


def judge(body: ObjectsCheck, obs: Observation, look: Look) -> Verdict:
    expected = f"in the IPC namespace of {body.in_}: " + ", ".join(f"{k} {e.describe()}" for k, e in body.expects)
    data = obs.probe_ipc(body.in_, ["probe", "--objects"])
    seen = data.get("objects") or {}
    observed = ", ".join(f"{k} {seen.get(k)}" for k, _ in body.expects)
    ok = all(e.holds(seen.get(k)) for k, e in body.expects)
    return Verdict(ok, expected, observed)


KIND = CheckKind("objects", ObjectsCheck, SPEC, build, judge, probes=lambda body: body.in_)
