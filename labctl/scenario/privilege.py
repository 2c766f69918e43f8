"""The ``privilege`` requirement: what a rootless engine cannot do for a scenario, or only it can.

A rootless engine (Podman run by a non-root user; ``Engine.privileges``) owns no cgroup unless
one is delegated to its user (cgroup v2 only), and Podman then ignores a memory limit instead of
refusing it, refuses ``pause`` and has no stats; it may not mount an mqueue file system for the
host's IPC namespace, so ``ipc: host`` needs the host's /dev/mqueue mounted; and ``userns:
keep-id`` runs only there. Registered in ``labctl.scenario.requirements`` like every kind: a
folder run skips such a scenario with the reason and the fix, a file named on the command line
is refused (exit 3) with the steps. No engine import: the engine's facts come on the ``Machine``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labctl.scenario.requirements import Machine, Need, Requirement, Unmet, register

if TYPE_CHECKING:
    from labctl.scenario.model import Scenario


# What a rootless engine cannot do for a scenario, or only it can. Rootful only: need value ->
# what the scenario uses; the need is a cgroup controller of that name. A rootless engine's user
# owns no cgroup unless one is delegated to it (cgroup v2 only), and Podman then ignores a
# limit instead of refusing it.
_ROOTFUL_ONLY = {
    "memory": "a memory limit (memory:, memory_swap:, an OOM kill or a memory check)",
    "freezer": "pause/unpause",
}
# A rootless engine cannot mount an mqueue file system for the host's IPC namespace (that
# needs CAP_SYS_ADMIN over it), so for ipc: host it bind-mounts the host's /dev/mqueue.
_HOST_MQUEUE = ("the host's IPC namespace (ipc: host, or a namespace check against host)",
                "mkdir -p /dev/mqueue && mount -t mqueue mqueue /dev/mqueue")
_ROOTLESS_ONLY = {
    "keep-id": "userns: keep-id (the user's own uid inside; a rootful Podman refuses it: "
               "'keep-id is only supported in rootless mode')",
}


def _privilege_needs(s: Scenario, _m: Machine) -> list[Need]:
    out: list[Need] = []
    for c in s.containers:
        if c.memory is not None or c.memory_swap is not None:
            out.append(Need("privilege", "memory", f"containers.{c.name}.memory", c.pos))
        if c.userns in _ROOTLESS_ONLY:
            out.append(Need("privilege", c.userns, f"containers.{c.name}.userns", c.pos))
    for c in s.all_checks():
        if c.kind == "memory" or (c.kind == "exit" and getattr(c.body, "oom_killed", None)):
            out.append(Need("privilege", "memory", f"checks.{c.name}", c.pos))
    out += [Need("privilege", "freezer", f"steps.{st.name}", st.pos) for st in s.steps
            if st.action in ("pause", "unpause")]
    host = [f"containers.{c.name}.ipc" for c in s.containers if c.ipc == "host"]
    host += [f"checks.{c.name}" for c in s.all_checks() if c.kind == "namespace" and "host" in (c.body.a, c.body.b)]
    out += [Need("privilege", "host-mqueue", path) for path in host[:1]]
    return out


def _privilege_probe(need: Need, m: Machine) -> Unmet | None:
    if need.value == "host-mqueue":
        if not m.rootless or m.host_mqueue:
            return None
        return Unmet(need, "needs /dev/mqueue on the engine host",
                     f"{_HOST_MQUEUE[0]}: this rootless {m.engine} bind-mounts the host's /dev/mqueue there, "
                     "having no right to mount an mqueue file system for that namespace, and this host has none "
                     "mounted (the engine says 'statfs /dev/mqueue: no such file or directory'; systemd mounts it "
                     "at boot)", f"{_HOST_MQUEUE[1]} (as root)", (_HOST_MQUEUE[1],))
    if need.value in _ROOTLESS_ONLY:
        if m.rootless or m.engine != "podman":
            return None  # Docker has no keep-id at all: the userns check names that
        return Unmet(need, "only on a rootless engine",
                     f"{_ROOTLESS_ONLY[need.value]}, and this {m.engine} runs as root",
                     "labctl run --engine podman with CONTAINER_HOST=unix:///run/user/UID/podman/podman.sock "
                     "(a rootless user's service; docs/setup.md, 'Rootless Podman')")
    if not m.rootless or (m.controllers is not None and need.value in m.controllers):
        return None
    what, controller = _ROOTFUL_ONLY[need.value], f"cgroup {need.value} controller"
    user = m.engine_user or "its user"
    if m.cgroup == "v1":
        why = f"cgroup v1 delegates no controller to {user}, so the engine ignores or refuses it"
        steps = ("boot the host with cgroup v2: systemd.unified_cgroup_hierarchy=1 on the kernel command line",
                 f"delegate the controllers to {user}: Delegate=memory pids cpu cpuset in "
                 "/etc/systemd/system/user@.service.d/delegate.conf, then systemctl daemon-reload",
                 "or run it on the rootful engine: unset CONTAINER_HOST, labctl run --engine podman")
    else:
        why = f"the {controller} is not delegated to {user}"
        steps = (f"delegate the controllers to {user}: Delegate=memory pids cpu cpuset in "
                 "/etc/systemd/system/user@.service.d/delegate.conf, then systemctl daemon-reload and log in again",
                 "or run it on the rootful engine: unset CONTAINER_HOST, labctl run --engine podman")
    return Unmet(need, "needs a rootful engine",
                 f"{what} needs the {controller}; this {m.engine} is rootless (as {user}) and {why}",
                 steps[-1].removeprefix("or "), steps)


register(Requirement("privilege", _privilege_needs, _privilege_probe))
