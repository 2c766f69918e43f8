"""The rules of ``labctl check``, one function each, registered with their library scenario.

A rule reads only the topology model (:mod:`labctl.stack.model`), never a file format, so
Compose and Kubernetes inputs go through the same code. Adding a rule: write a function
yielding :class:`~labctl.lint.Hit`, decorate it with :func:`~labctl.lint.register`, name
the scenario that shows the pitfall on an engine, and its twin; docs/check.md's table and
the library test pick it up.
"""

from __future__ import annotations

import re
from typing import Iterator

from labctl.lint import Hit, register
from labctl.stack.model import Container, Namespace, Topology, human

RESTARTING = ("always", "unless-stopped", "on-failure")
SANDBOXED = re.compile(r"(runsc|gvisor|kata)", re.IGNORECASE)
# sysctls a kubelet allows without --allowed-unsafe-sysctls (Kubernetes 1.29+ "safe" set)
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
IPC_SYSCTL = re.compile(r"^(kernel\.shm|kernel\.msg|kernel\.sem$|fs\.mqueue\.)")


def _restarting(policy: str) -> bool:
    return policy.split(":", 1)[0].strip().lower() in RESTARTING


def _ns(topo: Topology) -> Iterator[Namespace]:
    yield from topo.namespaces


def _donor(topo: Topology, c: Container) -> Container | None:
    """The container ``c`` names in ipc: service:/container: (by service or container_name)."""
    joins = c.joins
    if joins is None:
        return None
    index = topo.__dict__.get("_by_name")
    if index is None:
        index = {}
        for o in topo.containers:
            index.setdefault((o.group, o.name), o)
            if "container_name" in o.extra:
                index.setdefault((o.group, o.extra["container_name"]), o)
        topo.__dict__["_by_name"] = index
    return index.get((c.group, joins))


@register(
    id="join-private-donor", severity="error",
    title="joins the IPC namespace of a container that is not shareable",
    cause="""Docker lets a container join only a shareable IPC namespace (or the host's). A donor
    with ipc: private -- Docker's default since Engine 19.03, and what docker compose v2 asks for
    when a service sets no ipc: -- or one that itself joined another is refused: "non-shareable
    IPC". docker-compose 1.29 and Podman make containers shareable by default, so the same file
    works there and fails here.""",
    fix="""Set ipc: shareable on the service the others name in ipc: "service:NAME" (or point every
    joiner at one holder that is shareable, like a pod's sandbox).""",
    scenario="join-private-donor", twin="sysv-shareable", proof={"compose"},
    proof_note="Kubernetes cannot express a private donor: `labctl export k8s` refuses the scenario.",
    applies_to=("compose",))
def join_private_donor(topo: Topology) -> Iterator[Hit]:
    for c in topo.containers:
        if c.source != "compose" or c.joins is None or c.ipc is None:
            continue
        d = _donor(topo, c)
        if d is None:
            continue
        mode = d.ipc.value if d.ipc is not None else None
        if mode in ("shareable", "host"):
            continue
        why = ("ipc: " + mode) if mode else "no ipc: key, so private on Docker with docker compose v2"
        yield Hit(c.ipc.loc, f"'{c.name}' joins the IPC namespace of '{d.name}', which is not shareable ({why}): "
                             f"the engine refuses it with \"non-shareable IPC\"; set ipc: shareable on '{d.name}'")


@register(
    id="shm-size-on-joiner", severity="warning",
    title="shm_size on a container that joins another's IPC namespace is ignored",
    cause="""A container that joins another IPC namespace (ipc: service:/container:, or host) gets
    the donor's /dev/shm bind-mounted; its own shm_size sizes nothing.""",
    fix="""Set shm_size on the namespace donor (the service named in ipc: "service:NAME"), or on
    the pod's /dev/shm emptyDir in Kubernetes; drop it from the joiner.""",
    scenario="shm-size-joiner-ignored", twin="pod-shared-devshm",
    proof_note="Pending scenario: the library has no joiner with its own shm_size yet "
               "(pod-shared-devshm sizes /dev/shm on its holder, the fix).",
    applies_to=("compose",))
def shm_size_on_joiner(topo: Topology) -> Iterator[Hit]:
    for c in topo.containers:
        if c.shm_size is None or c.ipc is None:
            continue
        if c.joins is not None or c.ipc.value == "host":
            holder = topo.namespace_of(c)
            size = "the host's" if c.ipc.value == "host" else f"{human(holder.devshm)} from '{holder.holder}'"
            yield Hit(c.shm_size.loc, f"shm_size {human(c.shm_size.value)} on '{c.name}' is ignored: it uses the "
                                      f"/dev/shm of the namespace it joins ({size})")


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
    id="restart-policy-on-donor", severity="warning",
    title="a restart policy on an IPC namespace donor that others joined",
    cause="""A restarted donor gets a new IPC namespace; the containers that joined it keep the old
    one (with its segments and /dev/shm) and nothing re-joins them: after the first crash the
    writer and its readers silently stop sharing.""",
    fix="""Give the namespace to a holder that never restarts (a pause-like container with ipc:
    shareable, as a Kubernetes pod's sandbox) and let the workers join it; or restart every
    joiner whenever the donor restarts.""",
    scenario="donor-restart-splits-sharing", twin="donor-restart-rejoin",
    proof_note="The scenarios restart the donor with a timeline step (docker restart), which a "
               "Compose file cannot carry; the rule's unit tests use restart: policies.",
    applies_to=("compose",))
def restart_policy_on_donor(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        if ns.holder is None or ns.restart_policy is None or not _restarting(ns.restart_policy.value):
            continue
        joiners = [m.name for m in ns.members if m.name != ns.holder]
        if joiners:
            yield Hit(ns.restart_policy.loc,
                      f"restart: {ns.restart_policy.value} on '{ns.holder}', whose IPC namespace "
                      f"{', '.join(repr(j) for j in joiners)} joined: a restarted donor gets a new namespace "
                      "and the joiners stay in the old one")


@register(
    id="host-ipc", severity="warning",
    title="the host's IPC namespace (ipc: host / hostIPC: true)",
    cause="""Objects created in the host's IPC namespace outlive every container (a segment
    without IPC_RMID stays until reboot), collide with the host's and other tenants' keys, and
    every process on the node may attach what the permissions allow. Namespaced sysctls are
    refused with host IPC.""",
    fix="""Share a namespace between the containers that need it instead: ipc: shareable plus
    ipc: "service:NAME" in Compose, containers of one pod in Kubernetes.""",
    scenario="sysv-host", twin="sysv-shareable", proof={"compose", "k8s"})
def host_ipc(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        if ns.kind == "host" and ns.host_ipc is not None:
            who = ns.holder or ns.id
            yield Hit(ns.host_ipc.loc, f"'{who}' uses the host's IPC namespace: its segments outlive every "
                                       "container and are visible to the whole node")


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


@register(
    id="sandboxed-runtime-ipc", severity="error",
    title="a sandboxed runtime (gVisor, Kata) on containers that share IPC",
    cause="""Under gVisor (runsc) each sandbox has its own kernel, and Kata each its own VM: two
    containers the engine put in one IPC namespace share no SysV segment and no /dev/shm object
    (the reader's shmget gets ENOENT), although ipc: container: was accepted. hostIPC does not
    reach the node's namespace either. A file mapped MAP_SHARED on a bind-mounted directory
    still carries data.""",
    fix="""Run the containers that share memory with runc (or crun), or put them in one sandbox
    (one Kubernetes pod), or share through a file mapped on a shared volume.""",
    scenario="gvisor-sysv-not-shared", twin="gvisor-mmap-file-shared",
    proof_note="Pending scenarios: the runtimes work adds the gVisor scenarios to the library.")
def sandboxed_runtime_ipc(topo: Topology) -> Iterator[Hit]:
    for ns in topo.namespaces:
        if ns.kind == "host" and ns.runtime_class is not None and SANDBOXED.search(ns.runtime_class.value):
            yield Hit(ns.runtime_class.loc, f"runtimeClassName {ns.runtime_class.value} with hostIPC: the sandbox "
                                            "has its own kernel, so the node's IPC namespace is not shared")
        if len(ns.members) < 2 or ns.members[0].source != "compose":
            continue
        for c in ns.members:
            if c.runtime is not None and SANDBOXED.search(c.runtime.value):
                peers = [m.name for m in ns.members if m is not c]
                yield Hit(c.runtime.loc, f"runtime {c.runtime.value} on '{c.name}', which shares an IPC namespace "
                                         f"with {', '.join(repr(p) for p in peers)}: a sandbox has its own kernel, "
                                         "so SysV objects and /dev/shm are not shared")


@register(
    id="restart-in-shared-namespace", severity="note",
    title="a restarting container in a namespace that outlives it",
    cause="""A container that restarts inside an IPC namespace held by another (a joiner, a pod's
    container) finds everything its earlier runs left: SIGKILL and crashes skip cleanup, so
    segments and /dev/shm files pile up until /dev/shm is full (ENOSPC) or shmmni is reached.""",
    fix="""Remove leftovers at start (shm_unlink the names you own, IPC_RMID stale keys), mark
    segments IPC_RMID right after attaching, or set kernel.shm_rmid_forced=1.""",
    scenario="devshm-crashloop-fills", twin="devshm-crashloop-cleans", proof={"compose"}, twin_in_file=False,
    proof_note="The twin differs in its program (it removes its leftovers at start), not in the "
               "file: the rule reports both; only the pitfall is asserted. Kubernetes pods restart "
               "every container, so the rule reads only Compose policies.",
    applies_to=("compose",))
def restart_in_shared_namespace(topo: Topology) -> Iterator[Hit]:
    for c in topo.containers:
        if c.source == "compose" and c.restart is not None and _restarting(c.restart.value) and c.joins:
            yield Hit(c.restart.loc, f"restart: {c.restart.value} on '{c.name}', which joins '{c.joins}': each run "
                                     "inherits the objects earlier runs left in the namespace")
