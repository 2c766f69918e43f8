"""Rules on /dev/shm and SysV sizing: memory limits, /dev/shm size, Memory emptyDirs, shmmax."""

from __future__ import annotations

from typing import Iterator

from labctl.lint import Hit, register
from labctl.stack.topology import Topology, human


@register(
    id="memory-below-shm", severity="error",
    title="memory limit below what the container may write into /dev/shm",
    cause="""Pages written into /dev/shm (POSIX shm, a Memory emptyDir) are charged to the memory
    cgroup of the process that first touches them. A container whose memory limit is below what
    it writes there is OOM-killed (exit 137, OOMKilled) instead of getting ENOSPC from a full
    tmpfs; a reader that only maps pages someone else wrote is not charged.""",
    fix="""Raise the writer's memory limit above its /dev/shm use plus its own needs, or lower
    shm_size / the emptyDir sizeLimit to what the limit can hold, so a full /dev/shm fails with
    ENOSPC instead.""",
    scenario="shm-oom-killed-writer", twin="shm-writer-enough-memory", proof={"compose", "k8s"})
def memory_below_shm(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        declared = any(m.shm_use is not None for m in ns.members)
        for c in ns.members:
            if c.memory is None:
                continue
            limit = c.memory.value
            if c.shm_use is not None:
                use = c.shm_use.value if ns.devshm is None else min(c.shm_use.value, ns.devshm)
                if use > limit:
                    yield Hit(c.memory.loc, f"memory limit {human(limit)} on '{c.name}' is below the "
                                            f"{human(use)} it writes into /dev/shm: shm pages are charged to the "
                                            "writer, which is OOM-killed (exit 137) instead of getting ENOSPC")
            elif not declared and ns.devshm is not None and ns.devshm_loc is not None and ns.devshm > limit \
                    and (c.source == "k8s" or c.name == ns.holder):
                yield Hit(c.memory.loc, f"memory limit {human(limit)} on '{c.name}' is below its /dev/shm "
                                        f"({human(ns.devshm)}, set at line {ns.devshm_loc.line}): filling /dev/shm "
                                        "OOM-kills it (exit 137) instead of giving ENOSPC")


@register(
    id="devshm-too-small", severity="warning",
    title="/dev/shm smaller than what the containers put in it (64 MB by default)",
    cause="""Docker, Podman and a Kubernetes pod give /dev/shm 64 MB unless told otherwise
    (shm_size; an emptyDir of medium Memory mounted at /dev/shm). POSIX shm beyond it fails:
    ftruncate succeeds, touching the pages past the end raises SIGBUS, posix_fallocate gets
    ENOSPC.""",
    fix="""Compose: shm_size on the namespace's donor (or the service itself). Kubernetes: mount an
    emptyDir with medium: Memory and a sizeLimit at /dev/shm.""",
    scenario="posix-beyond-shm-size", twin="posix-shm-size-raised", proof={"compose", "k8s"})
def devshm_too_small(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        if ns.devshm is None or ns.devshm == 0 and ns.kind == "none":
            continue
        where = (f"set at line {ns.devshm_loc.line}" if ns.devshm_loc else
                 "the default; " + ("raise it with shm_size on " + repr(ns.holder) if ns.holder
                                    else "mount a Memory emptyDir at /dev/shm"))
        for c in ns.members:
            if c.shm_use is not None and c.shm_use.value > ns.devshm:
                yield Hit(c.shm_use.loc, f"'{c.name}' writes {human(c.shm_use.value)} into /dev/shm, which is "
                                         f"{human(ns.devshm)} ({where}): SIGBUS or ENOSPC past the end")
            elif c.shm_use is None and ns.devshm_loc is None and c.source == "k8s" \
                    and any("/dev/shm" in r for r in c.refs) and c.devshm_mount() is None:
                yield Hit(c.loc, f"'{c.name}' uses /dev/shm (named in its command or environment) and the pod "
                                 f"leaves it at the {human(ns.devshm)} default: mount a Memory emptyDir there")


@register(
    id="memory-emptydir-no-sizelimit", severity="note",
    title="an emptyDir of medium Memory without sizeLimit",
    cause="""A Memory emptyDir is a tmpfs bounded only by the node's memory; what containers write
    into it is charged to their memory limit, so filling it OOM-kills the writer (or gets the pod
    evicted) instead of failing the write with ENOSPC.""",
    fix="""Give the emptyDir a sizeLimit below the writers' memory limit.""",
    scenario="shm-oom-killed-writer", twin="shm-writer-enough-memory",
    proof_note="The library's pods size every Memory emptyDir they mount at /dev/shm; the scenario "
               "shows the OOM-kill that writing past a memory limit into tmpfs gives.",
    applies_to=("k8s",))
def memory_emptydir_no_sizelimit(topo: Topology) -> Iterator[Hit]:
    seen = set()
    for c in topo.containers:
        for m in c.mounts:
            if c.source == "k8s" and m.kind in ("emptydir", "tmpfs") and m.medium == "Memory" and m.size is None:
                where = m.size_loc or m.loc
                if where is not None and (c.namespace, m.source) not in seen:
                    seen.add((c.namespace, m.source))
                    yield Hit(where, f"emptyDir '{m.source}' (medium: Memory) has no sizeLimit: it can fill "
                                     "the node's memory and OOM-kill its writer instead of giving ENOSPC")


@register(
    id="shmmax-below-segment", severity="error",
    title="kernel.shmmax set below a segment the containers create",
    cause="""kernel.shmmax is per IPC namespace: every member of the namespace gets the value set on
    its holder (a Compose donor's sysctls, a pod's securityContext.sysctls). shmget of a segment
    larger than shmmax fails with EINVAL, however much memory is free.""",
    fix="""Raise kernel.shmmax (and kernel.shmall, in pages) on the namespace holder above the largest
    segment, or drop the sysctl: the kernel's default is practically unlimited.""",
    scenario="shmmax-einval", twin="shmmax-raised", proof={"compose", "k8s"})
def shmmax_below_segment(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        limit = next(((k, v) for k, v in ns.sysctls if k.value == "kernel.shmmax"), None)
        if limit is None:
            continue
        try:
            shmmax = int(str(limit[1]).strip())
        except ValueError:
            continue
        for c in ns.members:
            seg = c.extra.get("sysv_segment")
            if seg is not None and seg.value > shmmax:
                yield Hit(seg.loc, f"'{c.name}' creates a {human(seg.value)} SysV segment, above kernel.shmmax="
                                   f"{shmmax} set at line {limit[0].loc.line}: shmget fails with EINVAL")
