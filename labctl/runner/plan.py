"""The start plan: in which order a scenario's containers start, whose namespaces each
joins (its donors), which image and platform each runs (``Platforms``), and the
engine-level ``RunSpec`` of each.

Pure: reads the scenario, the volumes storage made and the platforms it is handed, never
calls the engine (but for the engine's architecture, once, when a container names a platform).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from labctl.errors import LabctlError
from labctl.images import platforms
from labctl.runner.context import RunContext
from labctl.runner.storage import Volumes
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


@dataclass(frozen=True)
class Platforms:
    """Which image and platform a scenario container runs. ``native``: the workload image
    of the engine's own platform; ``images``: platform -> workload image for the others;
    ``default``: the platform of workload containers that name none (``run --platform``;
    None: the engine's); ``architecture``: the engine's (``x86_64``...), asked only when a
    container runs on a named platform (one ``docker info``, cached by the engine)."""

    native: str
    architecture: Callable[[], str]
    images: dict[str, str] = field(default_factory=dict)
    default: str | None = None

    def platform_of(self, c: ContainerSpec) -> str | None:
        """The platform container ``c`` runs on: its own ``platform:``, else for a workload
        the run's ``--platform``; None: the engine's own (an image of the user's keeps its own)."""
        return c.platform or (self.default if c.workload else None)

    def emulated(self, platform: str | None) -> bool:
        """True when ``platform`` runs under qemu on this engine."""
        if platform is None:
            return False
        plat = platforms.lookup(platform)
        return plat is not None and not platforms.is_native(plat, self.architecture())

    def any_emulated(self, containers: Iterable[ContainerSpec]) -> bool:
        """True when one of ``containers`` runs under emulation."""
        return any(self.emulated(self.platform_of(c)) for c in containers)

    def workload_image(self, platform: str | None) -> str:
        """The workload image for ``platform`` (None: the engine's own). LabctlError when
        the run was not given one (the CLI builds every platform its scenarios name)."""
        if platform is None:
            return self.native
        try:
            return self.images[platform]
        except KeyError:
            raise LabctlError(f"no workload image for platform {platform} in this run "
                              f"(built: {', '.join(sorted(self.images)) or 'none'})") from None


class StartPlan:
    """The order and the run specs of one scenario's containers, from the run's names and
    labels (``ctx``), the ``volumes`` storage made and the ``platforms`` of the run."""

    def __init__(self, ctx: RunContext, volumes: Volumes, platforms: Platforms) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self.platforms = platforms

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
        platform = self.platforms.platform_of(c)
        if c.workload:
            image, command, entrypoint = self.platforms.workload_image(platform), [c.workload, *c.args], None
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
            mounts=self.volumes.mounts(c),
            # An emulated container gets an init as PID 1: qemu-user dies of a fault (SIGBUS)
            # by re-raising it with kill(), which PID 1 of a pid namespace ignores, so as
            # PID 1 it would hang instead of exiting 135 the way the native binary does.
            platform=platform, init=self.platforms.emulated(platform),
            mem_limit=str(c.memory) if c.memory is not None else DEFAULT_MEMORY, memswap_limit=c.memory_swap,
            restart_policy=c.restart, runtime=c.runtime,
            security_opt=security_opt(c), seccomp_profile=seccomp_profile(c.security_opt), userns_mode=c.userns,
            umask=f"{c.umask:04o}" if c.umask is not None else None,
            tmpfs={m.target: tmpfs_options(m.options) for m in c.mounts if m.tmpfs} | devshm_tmpfs(c),
        )

