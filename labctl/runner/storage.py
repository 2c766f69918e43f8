"""A scenario's storage: per-run named volumes (disk or tmpfs), per-run host temp dirs and
host dirs, and how a container's mounts map onto them."""

from __future__ import annotations

import os
import shutil
import tempfile

from labctl.runtime import hostpaths
from labctl.errors import LabctlError
from labctl.runner.context import RunContext
from labctl.runtime.engine import RunSpec
from labctl.scenario.model import ContainerSpec

Mount = tuple[str, str, str, bool]  # (volume|bind, source, target, read-only), as RunSpec.mounts


class Storage:
    """Creates the scenario's volumes and temp dirs; the engine objects go by label at
    teardown, the temp dirs (labctl made them, labctl deletes them) by ``remove_dirs``."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.volume_names: dict[str, str] = {}  # scenario volume name -> engine volume name
        self.binds: dict[str, str] = {}  # scenario volume name -> host directory (tempdir or hostdir)
        self.owned_dirs: list[str] = []  # the tempdirs

    def setup(self) -> None:
        """Create per-run volumes (``docker volume create``) and temp dirs; open them to the
        non-root workload user. LabctlError/EngineError if that fails."""
        ctx = self.ctx
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
                self.volume_names[v.name] = name
            elif v.type == "tempdir":
                seen = hostpaths.view(ctx.engine)
                if seen.to_engine(tempfile.gettempdir()) is None:
                    # labctl in a container (or a remote engine): the engine cannot bind
                    # our /tmp. A per-run named volume is the same shared directory for
                    # the containers; only the host cannot look into it.
                    name = ctx.name(v.name)
                    ctx.engine.create_volume(name, ctx.labels(f"volume-{v.name}"), None)
                    self.volume_names[v.name] = name
                    to_open.append(v.name)
                    continue
                path = tempfile.mkdtemp(prefix=f"{ctx.prefix}-{v.name}-")
                os.chmod(path, 0o1777)
                self.binds[v.name] = seen.to_engine(path) or path
                self.owned_dirs.append(path)
            else:
                path = os.path.normpath(os.path.join(base, v.path or "."))
                engine_path = hostpaths.view(ctx.engine).to_engine(path)
                if engine_path is None:
                    raise LabctlError(
                        f"volume {v.name!r}: {path} is not visible to the engine (labctl runs in a container "
                        f"or talks to a remote engine); bind-mount it into labctl's container, e.g. "
                        f"-v HOSTDIR:{path}")
                self.binds[v.name] = engine_path
        if to_open:
            self._open(to_open)

    def _open(self, names: list[str]) -> None:
        # A fresh named volume is root-owned 0755; open it (sticky, world-writable)
        # so the non-root workloads can create their files, as /tmp is.
        ctx = self.ctx
        spec = RunSpec(
            name=ctx.name("prep"), image=ctx.image, labels=ctx.labels("prep"),
            command=["prep", "--chmod", "1777", *[f"/v/{n}" for n in names]], user="0:0",
            mounts=[("volume", self.volume_names[n], f"/v/{n}", False) for n in names],
        )
        prep = ctx.engine.start_container(spec, "prep")
        status = prep.wait_exit(max(1.0, ctx.remaining()))
        if status is None or status.code != 0:
            raise LabctlError(f"preparing volumes failed: {status}; {prep.output.tail(5)}")
        ctx.engine.remove_labelled(ctx.selector("prep"))

    def mounts(self, c: ContainerSpec) -> list[Mount]:
        """The engine mounts of container ``c`` (its tmpfs mounts are not among them)."""
        mounts: list[Mount] = []
        for m in c.mounts:
            if m.tmpfs:
                continue
            if m.source in self.volume_names:
                mounts.append(("volume", self.volume_names[m.source], m.target, m.read_only))
            elif m.source in self.binds:
                mounts.append(("bind", self.binds[m.source], m.target, m.read_only))
        return mounts

    def remove_dirs(self) -> list[str]:
        """Delete the temp dirs labctl made; returns those still there."""
        for path in self.owned_dirs:
            shutil.rmtree(path, ignore_errors=True)
        return self.leftover_dirs()

    def leftover_dirs(self) -> list[str]:
        return [p for p in self.owned_dirs if os.path.exists(p)]
