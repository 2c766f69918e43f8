"""Rules on files and permissions: uids, single-file binds, private tmpfs, kubelet sysctls."""

from __future__ import annotations

from typing import Iterator

from labctl.lint import Hit, register
from labctl.lint.rules.shared import IPC_SYSCTL, SAFE_SYSCTLS
from labctl.stack.topology import Container, Topology


@register(
    id="uid-mismatch", severity="warning",
    title="containers sharing an IPC namespace run as different uids with no common group",
    cause="""SysV segments and POSIX shm objects carry an owner and a mode. A segment created 0600
    (or a POSIX object left 0644 by the default umask 022) by one uid cannot be attached
    read-write by another: shmat/shm_open fail with EACCES, and only the owner may IPC_RMID.""",
    fix="""Run the cooperating containers with the same uid (user:, runAsUser), or give them a
    common group (runAsGroup/supplementalGroups/group_add) and create the objects with mode
    0660.""",
    scenario="sysv-uid-mismatch", twin="sysv-uid-shared-group", proof={"compose", "k8s"})
def uid_mismatch(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        known = [m for m in ns.members if m.uid is not None]
        for i, c in enumerate(known):
            for other in known[:i]:
                if other.uid == c.uid:
                    continue
                g1 = {x for x in (c.gid, *c.groups) if x is not None}
                g2 = {x for x in (other.gid, *other.groups) if x is not None}
                if g1 & g2:
                    continue
                yield Hit(c.user.loc if c.user else c.loc,  # type: ignore[union-attr]
                          f"'{c.name}' runs as uid {c.uid} and '{other.name}' as uid {other.uid} in one IPC "
                          "namespace with no common group: objects one creates 0600/0644 give the other EACCES")
                break


@register(
    id="single-file-bind", severity="warning",
    title="a single file bind-mounted to share memory through mmap",
    cause="""A bind mount of a single file pins its inode. Writers and tools that replace the file
    (write a new one and rename it over) leave the other container mapping the old inode: the two
    stop sharing without an error. A subPath mount behaves the same.""",
    fix="""Bind-mount the directory that holds the file (and open the file by path inside it) in
    every container that maps it.""",
    scenario="mmap-bind-file", twin="mmap-bind-dir",
    proof_note="Pending scenario: the library shows the fix (mmap-bind-dir); the single-file "
               "variant needs a host file labctl would create per run.")
def single_file_bind(topo: Topology) -> Iterator[Hit]:
    by_source: dict[tuple[str, str], list[Container]] = {}
    for c in topo.containers:
        for m in c.mounts:
            if m.file_hint and m.source:
                by_source.setdefault((c.group, m.source), []).append(c)
    for c in topo.containers:
        for m in c.mounts:
            if not m.file_hint or not m.source:
                continue
            sharers = by_source.get((c.group, m.source), [])
            used = any(m.target.value in r for r in c.refs)
            if len(sharers) > 1 or (not m.read_only and used):
                yield Hit(m.target.loc, f"'{c.name}' mounts a single file at {m.target.value} ({m.file_hint}): "
                                        "a writer that replaces the file leaves this container on the old inode; "
                                        "mount its directory")


@register(
    id="tmpfs-not-shared", severity="error",
    title="a per-container tmpfs at a path other containers expect to share",
    cause="""A tmpfs (Compose tmpfs:, an emptyDir only one container mounts) is private to its
    container: another container using the same path sees its own empty filesystem, never the
    writer's file. Sharing memory through a file needs one filesystem mounted in both.""",
    fix="""Mount one shared volume in every container that uses the path: a named volume with
    driver_opts type: tmpfs in Compose, one emptyDir (medium: Memory, sizeLimit) mounted by each
    container of the pod in Kubernetes.""",
    scenario="tmpfs-not-shared", twin="tmpfs-volume-shared", proof={"compose", "k8s"})
def tmpfs_not_shared(topo: Topology) -> Iterator[Hit]:
    groups: dict[str, list[Container]] = {}
    for c in topo.containers:
        groups.setdefault(c.group if c.source == "compose" else c.namespace, []).append(c)
    for members in groups.values():
        for c in members:
            for m in c.mounts:
                path = m.target.value.rstrip("/")
                if m.kind != "tmpfs" or not path or path == "/dev/shm":
                    continue
                prefix = path + "/"
                if not any(r.startswith(prefix) or prefix in r for r in c.refs):
                    continue
                others = [o.name for o in members if o is not c and any(r.startswith(prefix) or prefix in r
                                                                        for r in o.refs)]
                if others:
                    yield Hit(m.target.loc, f"tmpfs at {path} is private to '{c.name}', but "
                                            f"{', '.join(repr(o) for o in others)} also {'use' if len(others) > 1 else 'uses'} {path}/...: each sees "
                                            "its own empty tmpfs; mount one shared volume instead")


@register(
    id="unsafe-ipc-sysctl", severity="warning",
    title="an IPC sysctl a kubelet refuses by default",
    cause="""kernel.shmmax, kernel.shmall, kernel.shmmni, kernel.msg*, kernel.sem and fs.mqueue.*
    are namespaced but not in the kubelet's safe set (only kernel.shm_rmid_forced is): a pod that
    sets them is rejected (SysctlForbidden) unless the node's kubelet runs with
    --allowed-unsafe-sysctls.""",
    fix="""Allow them on the nodes that run the pod (kubelet --allowed-unsafe-sysctls=
    'kernel.shm*,kernel.msg*,kernel.sem,fs.mqueue.*' plus a node selector), or drop the sysctl and
    size segments within the defaults.""",
    scenario="shmmax-raised", twin="shm-rmid-forced", proof={"k8s"},
    proof_note="Docker and Podman accept these sysctls: the rule is about Kubernetes only.",
    applies_to=("k8s",))
def unsafe_ipc_sysctl(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        if ns.kind not in ("pod", "host"):
            continue
        for name, value in ns.sysctls:
            if IPC_SYSCTL.match(name.value) and name.value not in SAFE_SYSCTLS:
                yield Hit(name.loc, f"sysctl {name.value}={value} is not in the kubelet's safe set: the pod is "
                                    "rejected (SysctlForbidden) unless the kubelet allows it")
