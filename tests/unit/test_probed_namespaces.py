"""Which IPC namespaces a scenario's checks look into: the runner starts a probe holder in
each from its owner's start, and a check whose namespace is missing here cannot probe."""

from __future__ import annotations

from pathlib import Path

from labctl import scenario as scen
from labctl.runner.probes import probed_owners

EDGES = Path(__file__).resolve().parents[1] / "data" / "edges"


def owners_of(s) -> set[str]:  # noqa: ANN001 - a Scenario
    """``probed_owners`` of ``s``, without an engine (it reads only the scenario)."""
    return probed_owners(s)


def owners(text: str) -> set[str]:
    return owners_of(scen.load_text(text, "t.yaml"))


def test_a_devshm_file_check_alone_needs_its_namespace_probed() -> None:
    s = scen.load_file(str(EDGES / "devshm-file-only.yaml"))
    assert owners_of(s) == {"writer"}


def test_a_volume_file_check_needs_no_namespace_and_same_as_adds_its_own() -> None:
    head = """\
version: 1
name: t
description: d
volumes: {data: {}}
containers:
  a: {workload: posix-writer, args: [--name, /x], ipc: shareable, volumes: ["data:/data"]}
  b: {workload: posix-writer, args: [--name, /x], ipc: shareable, volumes: ["data:/data"]}
checks:
"""
    assert owners(head + "  - file: {container: a, path: /data/f}\n") == set()
    assert owners(head + "  - file: {container: a, path: /dev/shm/x, same_as: b}\n") == {"a", "b"}


class _LosingHolder:
    """A probe holder whose engine loses the output of its first ``lost`` execs (exit 0,
    nothing attached: Podman 4.3 under load), then answers with a probe event."""

    def __init__(self, lost: int) -> None:
        self.lost, self.execs = lost, 0

    def exec(self, cmd: list[str], timeout: float = 30.0) -> tuple[int, str]:
        self.execs += 1
        return (0, "") if self.execs <= self.lost else (0, '{"event":"probe","segments":[]}\n')


class _Ctx:
    def remaining(self) -> float:
        return 60.0


def test_a_probe_whose_output_the_engine_lost_is_asked_again() -> None:
    import pytest

    from labctl.errors import LabctlError
    from labctl.runner.probes import PROBE_TRIES, ProbeSet

    probes = ProbeSet(_Ctx(), started=lambda role: None, refusal=lambda role: None)  # type: ignore[arg-type]
    twice = _LosingHolder(lost=2)
    assert probes.run(twice, ["probe"], "the IPC namespace of holder")["event"] == "probe"  # type: ignore[arg-type]
    assert twice.execs == 3
    always = _LosingHolder(lost=100)
    with pytest.raises(LabctlError, match=r"probe of the IPC namespace of holder failed \(exit 0\)"):
        probes.run(always, ["probe"], "the IPC namespace of holder")  # type: ignore[arg-type]
    assert always.execs == PROBE_TRIES
