"""A scenario's storage: per-run named volumes (disk or tmpfs), per-run host temp dirs and
host dirs (``Storage.setup`` makes them and returns them as ``Volumes``), and how a
container's mounts map onto them (``Volumes.mounts``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

from labctl.runtime import hostpaths
from labctl.errors import LabctlError
from labctl.runner.context import RunContext
from labctl.runtime.engine import RunSpec
from labctl.scenario.model import ContainerSpec

Mount = tuple[str, str, str, bool]  # (volume|bind, source, target, read-only), as RunSpec.mounts


@dataclass(frozen=True)
class Volumes:
    """What ``Storage.setup`` made: ``names`` maps a scenario volume to its engine volume,
    ``binds`` a scenario volume to the host directory the engine binds (tempdir, hostdir)."""

    names: dict[str, str] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)

    def mounts(self, c: ContainerSpec) -> list[Mount]:
        """The engine mounts of container ``c`` (its tmpfs mounts are not among them)."""
        mounts: list[Mount] = []
        for m in c.mounts:
            if m.tmpfs:
                continue
            if m.source in self.names:
                mounts.append(("volume", self.names[m.source], m.target, m.read_only))
            elif m.source in self.binds:
                mounts.append(("bind", self.binds[m.source], m.target, m.read_only))
        return mounts


class Storage:
    """Creates the scenario's volumes and temp dirs; the engine objects go by label at
    teardown, the temp dirs (labctl made them, labctl deletes them) by ``remove_dirs``,
    also those of a setup that failed half-way."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.owned_dirs: list[str] = []  # the tempdirs

    def setup(self) -> Volumes:
        """Create per-run volumes (``docker volume create``) and temp dirs, open them to the
        non-root workload user and return them. LabctlError/EngineError if that fails."""
        ctx = self.ctx
        names: dict[str, str] = {}  # scenario volume -> engine volume
        binds: dict[str, str] = {}  # scenario volume -> host directory the engine binds
        base = os.path.dirname(os.path.abspath(ctx.scenario.file))
        to_open = []
        for v in ctx.scenario.volumes:
            if v.type in ("volume", "tmpfs-volume"):
                name = ctx.name(v.name)
                opts = None
                if v.type == "tmpfs-volume":
                    o = "mode=1777" + (f",size={v.size}" if v.size else "")
                    opts = {"type": "tmpfs", "device": "tmpfs", "o": o}
                else:
                    to_open.append(v.name)
                ctx.engine.create_volume(name, ctx.labels(f"volume-{v.name}"), opts)
                names[v.name] = name
            elif v.type == "tempdir":
                seen = hostpaths.view(ctx.engine)
                if seen.to_engine(tempfile.gettempdir()) is None:
                    # labctl in a container (or a remote engine): the engine cannot bind
                    # our /tmp. A per-run named volume is the same shared directory for
                    # the containers; only the host cannot look into it.
                    name = ctx.name(v.name)
                    ctx.engine.create_volume(name, ctx.labels(f"volume-{v.name}"), None)
                    names[v.name] = name
                    to_open.append(v.name)
                    continue
                path = tempfile.mkdtemp(prefix=f"{ctx.prefix}-{v.name}-")
                os.chmod(path, 0o1777)
                binds[v.name] = seen.to_engine(path) or path
                self.owned_dirs.append(path)
            else:
                path = os.path.normpath(os.path.join(base, v.path or "."))
                engine_path = hostpaths.view(ctx.engine).to_engine(path)
                if engine_path is None:
                    raise LabctlError(
                        f"volume {v.name!r}: {path} is not visible to the engine (labctl runs in a container "
                        f"or talks to a remote engine); bind-mount it into labctl's container, e.g. "
                        f"-v HOSTDIR:{path}")
                binds[v.name] = engine_path
        if to_open:
            self._open({n: names[n] for n in to_open})
        return Volumes(names, binds)

    def _open(self, volumes: dict[str, str]) -> None:
        # A fresh named volume is root-owned 0755; open it (sticky, world-writable)
        # so the non-root workloads can create their files, as /tmp is.
        ctx = self.ctx
        spec = RunSpec(
            name=ctx.name("prep"), image=ctx.image, labels=ctx.labels("prep"),
            command=["prep", "--chmod", "1777", *[f"/v/{n}" for n in volumes]], user="0:0",
            mounts=[("volume", v, f"/v/{n}", False) for n, v in volumes.items()],
        )
        prep = ctx.engine.start_container(spec, "prep")
        status = prep.wait_exit(max(1.0, ctx.remaining()))
        if status is None or status.code != 0:
            raise LabctlError(f"preparing volumes failed: {status}; {prep.output.tail(5)}")
        ctx.engine.remove_labelled(ctx.selector("prep"))

    def remove_dirs(self) -> list[str]:
        """Delete the temp dirs labctl made; returns those still there."""
        for path in self.owned_dirs:
            shutil.rmtree(path, ignore_errors=True)
        return self.leftover_dirs()

    def leftover_dirs(self) -> list[str]:
        return [p for p in self.owned_dirs if os.path.exists(p)]
