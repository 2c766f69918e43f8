"""``cleanup``: after teardown nothing of the run remains (engine objects, host IPC)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder
from labctl.scenario.compound import Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict
from labctl.scenario.spec import PDict


@dataclass(frozen=True)
class CleanupCheck:
    """After teardown nothing labelled with this run's id remains on the engine, and where
    the scenario used ``ipc: host``, the host's SysV segments and /dev/shm are as before."""

    host_ipc: bool = True


SPEC = Obj({}, "after teardown nothing of this run remains")


def build(b: Builder, d: PDict, path: str) -> tuple[CleanupCheck, str]:
    return CleanupCheck(host_ipc=any(c.ipc == "host" for c in b.containers)), "cleanup"


def judge(body: CleanupCheck, obs: Observation, look: Look) -> Verdict:
    left = obs.leftovers()
    return Verdict(not left, "nothing of the scenario left on the engine or in host IPC",
                   "left: " + ", ".join(left) if left else "nothing left", final=True)


KIND = CheckKind("cleanup", CleanupCheck, SPEC, build, judge, after_teardown=True)
