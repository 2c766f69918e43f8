"""``memory``: a container's memory cgroup usage (page cache and shared memory included)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, not_started, ref
from labctl.scenario.model import Expect
from labctl.scenario.spec import PDict, Size


@dataclass(frozen=True)
class MemoryCheck:
    """The memory cgroup usage of running ``container`` in bytes satisfies ``usage``
    (``{lt: 16m}``): shm and tmpfs pages count for the cgroup that first touched them."""

    container: str
    usage: Expect


SPEC = Obj({
    "container": F(Ref("a running container"), True),
    "usage": F(ExpectT(Size(maximum=2**44), "bytes (sizes take units): SIZE or {OP: SIZE}"), True),
}, "a container's memory cgroup usage (docker stats), shared memory included")


def _mib(n: object) -> str:
    return f"{n / 2**20:.1f} MiB" if isinstance(n, (int, float)) else str(n)


def build(b: Builder, d: PDict, path: str) -> tuple[MemoryCheck, str]:
    c = ref(b, d, "container", path)
    usage = get(d, "usage")
    exp = usage if isinstance(usage, Expect) else Expect("ge", 0)
    return MemoryCheck(c, exp), f"memory {c}"


def judge(body: MemoryCheck, obs: Observation, look: Look) -> Verdict:
    e = body.usage
    expected = f"memory usage of {body.container} {e.describe().split(' ')[0]} {_mib(e.value)}"
    if (v := not_started(obs, body.container, expected)) is not None:
        return v
    n = obs.memory_usage(body.container)
    if n is None:
        return Verdict(False, expected, f"{body.container} does not run: the engine reports no memory usage")
    return Verdict(e.holds(n), expected, f"{_mib(n)} ({n} bytes)")


KIND = CheckKind("memory", MemoryCheck, SPEC, build, judge)
