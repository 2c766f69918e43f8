"""Rules on IPC namespaces: who joins whom, host IPC, restarts and sandboxes."""

from __future__ import annotations

from typing import Iterator

from labctl.lint import Hit, register
from labctl.lint.rules.shared import SANDBOXED, donor, restarting
from labctl.stack.topology import Topology, human


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
        d = donor(topo, c)
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
    scenario="shm-size-joiner-ignored", twin="pod-shared-devshm", proof={"compose"},
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
        if ns.holder is None or ns.restart_policy is None or not restarting(ns.restart_policy.value):
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
    id="sandboxed-runtime-ipc", severity="error",
    title="a sandboxed runtime (gVisor, Kata) on containers that share IPC",
    cause="""Under gVisor (runsc) each sandbox has its own kernel, and Kata each its own VM: two
    containers the engine put in one IPC namespace share no SysV segment and no /dev/shm object
    (the reader's shmget gets ENOENT), although ipc: container: was accepted. hostIPC does not
    reach the node's namespace either. A file mapped MAP_SHARED on a bind-mounted directory
    still carries data.""",
    fix="""Run the containers that share memory with runc (or crun), or put them in one sandbox
    (one Kubernetes pod), or share through a file mapped on a shared volume.""",
    scenario="gvisor-sysv-not-shared", twin="gvisor-mmap-bind-dir-shared", proof={"compose"},
    proof_note="A pod is one sandbox: `labctl export k8s` puts the scenario's containers in one gVisor "
               "pod, where they do share; in Kubernetes the rule reads only hostIPC with a sandboxed "
               "runtimeClassName.")
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
        if c.source == "compose" and c.restart is not None and restarting(c.restart.value) and c.joins:
            yield Hit(c.restart.loc, f"restart: {c.restart.value} on '{c.name}', which joins '{c.joins}': each run "
                                     "inherits the objects earlier runs left in the namespace")
