"""The runtime and security keys of a container as the exports write them: compose services
(``runtime``, ``security_opt``, a /dev/shm ``tmpfs`` entry) and Kubernetes (``runtimeClassName``,
``securityContext`` seccomp/SELinux/AppArmor, the /dev/shm ``emptyDir``). One place, so both
exports say the same thing; what a target cannot express comes back as a note."""

from __future__ import annotations

import os
from typing import Any

from labctl.scenario.model import ContainerSpec
from labctl.scenario.security import devshm_tmpfs, seccomp_profile

# runtime -> the RuntimeClass a cluster conventionally names it by (gVisor's docs use "gvisor")
RUNTIME_CLASS = {"runsc": "gvisor", "crun": "crun"}


def compose_security(c: ContainerSpec, scenario_dir: str) -> tuple[list[str], dict[str, Any]]:
    """(security_opt, extra service keys) of a compose service: the seccomp profile by its
    absolute path (compose reads the file relative to the compose file's own folder, which
    is wherever the user saves the output, so only an absolute path holds everywhere),
    ``runtime:`` and a /dev/shm tmpfs entry for ``shm_options``."""
    opts: list[str] = []
    for o in c.security_opt:
        if o.startswith("seccomp=") and o != "seccomp=unconfined":
            opts.append("seccomp=" + os.path.join(scenario_dir, o.split("=", 1)[1]))
        else:
            opts.append("no-new-privileges:true" if o == "no-new-privileges" else o)
    if not any(o.startswith("no-new-privileges") for o in opts):
        opts.insert(0, "no-new-privileges:true")
    extra: dict[str, Any] = {}
    if c.runtime:
        extra["runtime"] = c.runtime
    if c.userns:
        extra["userns_mode"] = c.userns
    if c.shm_options:
        extra["tmpfs_devshm"] = "/dev/shm:" + devshm_tmpfs(c)["/dev/shm"]
    return opts, extra


def k8s_security(c: ContainerSpec, sc: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``sc`` (a container securityContext) with the seccomp profile (``Localhost``, the file's
    name under the kubelet's seccomp directory), SELinux options and AppArmor profile."""
    profile = seccomp_profile(c.security_opt)
    if profile is not None:
        name = os.path.basename(profile)
        sc["seccompProfile"] = {"type": "Localhost", "localhostProfile": name}
        notes.append(f"{c.name}: copy {profile} to each node's kubelet seccomp directory "
                     f"(/var/lib/kubelet/seccomp/{name})")
    elif "seccomp=unconfined" in c.security_opt:
        sc["seccompProfile"] = {"type": "Unconfined"}
    for o in c.security_opt:
        if o.startswith("label=") and o != "label=disable":
            key, _, value = o[len("label="):].partition(":")
            sc.setdefault("seLinuxOptions", {})[key] = value
        if o.startswith("apparmor="):
            prof = o.split("=", 1)[1]
            sc["appArmorProfile"] = ({"type": "Unconfined"} if prof == "unconfined"
                                     else {"type": "Localhost", "localhostProfile": prof})
        if o == "no-new-privileges:false":
            sc["allowPrivilegeEscalation"] = True
    return sc


def k8s_runtime_class(containers: list[ContainerSpec], notes: list[str]) -> str | None:
    """The pod's ``runtimeClassName`` (a pod has one runtime): from its containers' runtime."""
    wanted = {c.runtime for c in containers if c.runtime and c.runtime != "runc"}
    if not wanted:
        return None
    if len(wanted) > 1:
        notes.append(f"containers of one pod name different runtimes ({', '.join(sorted(wanted))}): "
                     "a pod has one RuntimeClass; the first is used")
    rt = sorted(wanted)[0]
    notes.append(f"runtimeClassName {RUNTIME_CLASS[rt]}: the cluster needs a RuntimeClass of that name "
                 f"whose handler is {rt}")
    if rt == "runsc":
        notes.append("under gVisor the containers of one pod run in one sandbox (one kernel) and share its "
                     "System V IPC, unlike two containers on runsc under Docker or Podman, which are two sandboxes")
    return RUNTIME_CLASS[rt]
