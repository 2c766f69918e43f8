"""The start plan: in which order a scenario's containers start, whose namespaces each
joins (its donors), and the engine-level ``RunSpec`` of each.

Pure: reads the scenario and the storage's mounts, never calls the engine.
"""

from __future__ import annotations

from labctl.errors import LabctlError
from labctl.runner.context import RunContext
from labctl.runner.storage import Storage
from labctl.runtime.engine import RunSpec
from labctl.scenario.model import ContainerSpec, linked_container
from labctl.scenario.security import devshm_tmpfs, seccomp_profile, security_opt, tmpfs_options

WORKLOAD_USER = "65534:65534"  # nobody: the workloads need no privilege
DEFAULT_MEMORY = "256m"  # a container's memory limit unless its `memory:` says otherwise


def donors(c: ContainerSpec) -> dict[str, str]:
    """The containers whose namespaces ``c`` joins: {kind: name} for IPC, network, pid
    (kind as messages say it)."""
    return {("IPC" if key == "ipc" else key): name for key, name in c.links.items()}


def start_order(containers: list[ContainerSpec]) -> list[ContainerSpec]:
    """``containers`` in an order that honours ``after`` and namespace donors (validation
    rejected cycles; one left raises LabctlError)."""
    done: list[ContainerSpec] = []
    names: set[str] = set()
    pending = list(containers)
    while pending:
        for c in pending:
            deps = {a.container for a in c.after} | set(donors(c).values())
            if deps <= names:
                done.append(c)
                names.add(c.name)
                pending.remove(c)
                break
        else:
            raise LabctlError("start order has a cycle")  # validation prevents this
    return done


class StartPlan:
    """The order and the run specs of one scenario's containers."""

    def __init__(self, ctx: RunContext, storage: Storage) -> None:
        self.ctx = ctx
        self.storage = storage

    def order(self) -> list[ContainerSpec]:
        return start_order(list(self.ctx.scenario.containers))

    def engine_mode(self, mode: str | None) -> str | None:
        """A namespace mode as the engine takes it: ``container:NAME`` names the container."""
        donor = linked_container(mode)
        return f"container:{self.ctx.name(donor)}" if donor is not None else mode

    def run_spec(self, c: ContainerSpec) -> RunSpec:
        """The engine-level description of scenario container ``c`` (hardened by default:
        read-only root, no capabilities, no-new-privileges, no network, pids/memory
        limits; a workload runs as nobody). The same spec serves every (re)creation."""
        command: list[str] | None
        entrypoint: list[str] | None
        user: str | None
        platform = self.ctx.platform_of(c)
        if c.workload:
            image, command, entrypoint = self.ctx.workload_image(platform), [c.workload, *c.args], None
            user = c.user or WORKLOAD_USER
        else:
            image, command = c.image or "", list(c.command) if c.command is not None else None
            entrypoint = list(c.entrypoint) if c.entrypoint is not None else None
            user = c.user
        ipc, network, pid = (self.engine_mode(mode) for mode in (c.ipc, c.network, c.pid))
        if not c.ipc_set:
            ipc = None  # no `ipc:` in the file: the engine's default (Docker private, Podman shareable)
        return RunSpec(
            name=self.ctx.name(c.name), image=image, labels=self.ctx.labels(c.name, dict(c.labels)),
            command=command, entrypoint=entrypoint, ipc_mode=ipc, network_mode=network, user=user,
            read_only=c.read_only, cap_add=list(c.cap_add), privileged=c.privileged, pid_mode=pid,
            devices=list(c.devices), shm_size=c.shm_size, sysctls=dict(c.sysctls), environment=dict(c.env),
            mounts=self.storage.mounts(c),
            # An emulated container gets an init as PID 1: qemu-user dies of a fault (SIGBUS)
            # by re-raising it with kill(), which PID 1 of a pid namespace ignores, so as
            # PID 1 it would hang instead of exiting 135 the way the native binary does.
            platform=platform, init=self.ctx.emulated(platform),
            mem_limit=str(c.memory) if c.memory is not None else DEFAULT_MEMORY, memswap_limit=c.memory_swap,
            restart_policy=c.restart, runtime=c.runtime,
            security_opt=security_opt(c), seccomp_profile=seccomp_profile(c.security_opt), userns_mode=c.userns,
            tmpfs={m.target: tmpfs_options(m.options) for m in c.mounts if m.tmpfs} | devshm_tmpfs(c),
        )

