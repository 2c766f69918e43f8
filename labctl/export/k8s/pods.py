"""Which Pods a scenario becomes, and what Kubernetes cannot express.

A Kubernetes pod is one IPC namespace (held by its sandbox) shared by all its containers,
with one /dev/shm; ``hostIPC: true`` makes it the node's. So a scenario's containers group
into pods by the IPC namespace they live in (``Scenario.ipc_owner``): a donor and its
joiners form one pod, every private container its own. Engine-free and pure: the result is
a ``PodPlan`` per pod, or ``ScenarioErrors`` (exit 2) naming the file, the key and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.model import ContainerSpec, Scenario, linked_container

# the engine's restart policy -> the Pod's (a pod has one, for all its containers)
RESTART_POLICY = {"no": "Never", "on-failure": "OnFailure", "always": "Always", "unless-stopped": "Always"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class PodPlan:
    """One pod: its containers (file order), the IPC owner naming it, and its IPC mode
    (``shareable`` when several share it or one may be joined, ``private``, ``host``)."""

    owner: str
    containers: list[ContainerSpec]
    ipc: str
    shm_size: int | None = None
    sysctls: tuple[tuple[str, str], ...] = ()
    init: set[str] = field(default_factory=set)  # roles that run to completion first (after: exited)
    restart: str = "Never"  # the pod's restartPolicy


def _err(s: Scenario, c: ContainerSpec | None, key: str, msg: str) -> ScenarioError:
    pos = c.pos if c is not None else s.pos
    path = f"containers.{c.name}.{key}" if c is not None else key
    return ScenarioError(s.file, pos.line or None, pos.col or None, path, f"Kubernetes cannot express this: {msg}")


def plan_pods(s: Scenario) -> list[PodPlan]:
    """The pods of scenario ``s`` in file order of their owners.

    Raises ScenarioErrors listing every construct a Pod cannot express: ``ipc: none``
    (a pod always has an IPC namespace and a /dev/shm), joining a private donor (Docker
    refuses it; a pod would silently share), per-container IPC namespaces forced into
    one pod by a shared network or pid namespace, differing IPC sysctls or /dev/shm sizes
    within one pod, devices, host directories of this machine, pid/network namespaces
    joined across pods."""
    errors: list[ScenarioError] = []
    groups: dict[str, list[ContainerSpec]] = {}
    for c in s.containers:
        if c.ipc == "none":
            errors.append(_err(s, c, "ipc", "'none' (no IPC namespace, no /dev/shm): every container of a "
                                            "pod shares the pod's IPC namespace and /dev/shm"))
            continue
        donor = c.ipc_donor
        if donor is not None and s.container(donor).ipc == "private":
            errors.append(_err(s, c, "ipc", f"joining '{donor}', whose IPC namespace is private: Docker refuses "
                                            "it, while a pod would share it silently"))
            continue
        groups.setdefault(s.ipc_owner(c.name), []).append(c)
    owner_of = {c.name: owner for owner, cs in groups.items() for c in cs}
    for c in s.containers:
        for kind, other in c.links.items():
            if kind == "ipc" or other not in owner_of or c.name not in owner_of:
                continue
            if owner_of[other] != owner_of[c.name]:
                errors.append(_err(s, c, kind, f"'{kind}: container:{other}' joins a container in another IPC "
                                               "namespace: a pod's containers share one IPC namespace, and "
                                               f"namespaces cannot be joined across pods"))
        if c.devices:
            errors.append(_err(s, c, "devices", "host devices are not part of the Pod API (use a device plugin)"))
    for i, st in enumerate(getattr(s, "steps", ())):
        action = ACTIONS.get(st.action)
        if action is not None and action.k8s is not None:
            errors.append(ScenarioError(s.file, st.pos.line or None, st.pos.col or None, f"steps[{i}]",
                                        f"Kubernetes cannot express this: the timeline's '{st.action}' of "
                                        f"'{st.container}' is {action.k8s}"))
            break
    for c in s.containers:
        if not getattr(c, "start", True):
            errors.append(_err(s, c, "start", "'start: false' (started later by a step): a pod starts all "
                                              "its containers"))
    for v in s.volumes:
        if v.type == "hostdir":
            users = [c for c in s.containers if any(m.source == v.name for m in c.mounts)]
            errors.append(_err(s, users[0] if users else None, "volumes" if users else f"volumes.{v.name}",
                               f"volume '{v.name}' is a directory of this machine (hostdir); a cluster's nodes "
                               "do not have it"))
    pods: list[PodPlan] = []
    for owner, cs in groups.items():
        mode = s.container(owner).ipc
        ipc = "host" if mode == "host" else ("shareable" if len(cs) > 1 or mode == "shareable" else "private")
        pod = PodPlan(owner, cs, ipc)
        sizes = {c.shm_size for c in cs if c.shm_size is not None}
        owner_size = s.container(owner).shm_size
        if owner_size is not None:
            pod.shm_size = owner_size  # joiners use the donor's /dev/shm, whatever they ask for
        elif len(sizes) > 1:
            odd = [c for c in cs if c.shm_size is not None][1:]
            errors.append(_err(s, odd[0], "shm_size", "one pod has one /dev/shm; its containers ask for "
                                                      f"different sizes {sorted(sizes)}"))
        elif sizes:
            pod.shm_size = sizes.pop()
        sysctl_sets = {c.sysctls for c in cs if c.sysctls}
        if len(sysctl_sets) > 1:
            odd = [c for c in cs if c.sysctls][1:]
            errors.append(_err(s, odd[0], "sysctls", "the IPC sysctls of one pod are set once for the pod; its "
                                                    "containers ask for different ones"))
        elif sysctl_sets:
            pod.sysctls = sysctl_sets.pop()
        # a pod has one restart policy: one container's (a crash-looping app beside a holder
        # that never exits) becomes the pod's; two different ones cannot be kept
        policies = {RESTART_POLICY.get(getattr(c, "restart", "no").split(":")[0], "Never") for c in cs} - {"Never"}
        if not policies:
            pass
        elif len(policies) > 1:
            odd = [c for c in cs if getattr(c, "restart", "no") != getattr(cs[0], "restart", "no")]
            errors.append(_err(s, odd[0], "restart", "the restart policy of a pod is one for all its "
                                                     f"containers; these ask for {sorted(policies)}"))
        else:
            pod.restart = policies.pop()
        members = {c.name for c in cs}
        for c in cs:
            for a in c.after:
                if a.condition == "exited" and a.container in members:
                    pod.init.add(a.container)
        pods.append(pod)
    for pod in pods:
        for c in pod.containers:
            late = [a.container for a in c.after if a.container not in pod.init]
            if c.name in pod.init and late:
                errors.append(_err(s, c, "after", f"'{c.name}' must exit before the pod's containers start "
                                                  f"(others wait for it), but it waits for '{late[0]}' itself"))
            for a in c.after:
                if a.condition == "exited" and a.container not in {x.name for x in pod.containers}:
                    errors.append(_err(s, c, "after", f"waiting for '{a.container}' (another pod) to exit: "
                                                      "pods do not wait for each other"))
            if not DNS_LABEL.match(c.name):
                errors.append(_err(s, c, "", f"'{c.name}' is not a valid Kubernetes container name"))
    from labctl.scenario.security import engine_only_errors

    errors += engine_only_errors(s, "Kubernetes", "(a Pod's securityContext has no umask; the container "
                                                  "runtime's default, 0022, applies: set it in the program)")
    if errors:
        raise ScenarioErrors(errors)
    return pods


def volume_users(pods: list[PodPlan]) -> dict[str, set[str]]:
    """Scenario volume name -> the owners of the pods that mount it."""
    users: dict[str, set[str]] = {}
    for pod in pods:
        for c in pod.containers:
            for m in c.mounts:
                if m.source is not None and not m.tmpfs:
                    users.setdefault(m.source, set()).add(pod.owner)
    return users


def same_pod(pods: list[PodPlan], a: str, b: str) -> bool:
    """True when roles ``a`` and ``b`` end up in one pod."""
    return any({a, b} <= {c.name for c in p.containers} for p in pods)


__all__ = ["PodPlan", "plan_pods", "volume_users", "same_pod", "linked_container"]
