"""The checks ``labctl import`` generates: what the file declares, verified on the engine.

* each member of an IPC group shares its owner's namespace (``namespace ... same: true``);
  owners of different groups do not (``same: false``); ``ipc: host``: the host's;
* the /dev/shm size inside each group (``objects: {devshm_capacity}``, a probe in the
  group's namespace): the owner's ``shm_size``, else the engine's 64 MB;
* a volume mounted by several services at one path is one inode through each of them
  (``file: {same_as}``);
* nothing left after the run (``cleanup``).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from labctl.importer.services import Mount, Service
from labctl.importer.translate import DEFAULT_SHM, Translator, size_text

# /dev/shm when nothing sets shm_size: Docker's 64 MiB; Podman's 64000 KiB (seen here:
# podman 4.3 mounts /dev/shm with size=64000k, 65536000 bytes).
ENGINE_DEFAULT_SHM = {"docker": DEFAULT_SHM, "podman": 64000 << 10}


def generated_checks(self: Translator, containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The generated checks (see the module docstring); a lone private owner is made shareable."""
    checks: list[dict[str, Any]] = []
    groups = {o: [m for m in ms if m in containers_by_service(self, containers)]
              for o, ms in self.groups().items()}
    groups = {o: ms for o, ms in groups.items() if ms and o in ms}
    for owner, members in groups.items():
        for m in members[1:]:
            checks.append({"name": f"{self.names[m]} shares the IPC namespace of {self.names[owner]}",
                           "namespace": {"containers": [self.names[owner], self.names[m]], "same": True}})
    host = [o for o in groups if self.ipc.get(o) == "host"]
    for o in host:
        checks.append({"name": f"{self.names[o]} is in the host's IPC namespace",
                       "namespace": {"containers": [self.names[o], "host"], "same": True}})
    # A namespace id is reused once its namespace is gone: "different" is only sound
    # between namespaces that live at the same time. The probes of the /dev/shm checks
    # hold each one from its start; a service others wait to exit may be gone before.
    once = {o: s for o in groups for s in self.stack.services
            if any(d[0] == o and d[1] == "exited" for d in s.depends)}
    for o, waiter in once.items():
        if self.ipc.get(o) != "host":
            self.above.setdefault(o, []).append(
                f"runs to completion before {waiter.name} starts: its IPC namespace is gone before the checks "
                "look, so none is compared or probed")
    for o in groups:
        if self.ipc.get(o) == "none":
            self.above.setdefault(o, []).append(
                "ipc: none: a namespace nothing can join or hold, so its id may be reused once it is gone: "
                "not compared")
    apart = [o for o in groups if self.ipc.get(o) not in ("host", "none") and o not in once]
    for a, b in combinations(apart, 2):
        checks.append({"name": f"{self.names[a]} and {self.names[b]} are in different IPC namespaces",
                       "namespace": {"containers": [self.names[a], self.names[b]], "same": False}})
    for owner in apart:
        mode = self.ipc.get(owner)
        s = self.by_name[owner]
        size = s.shm_size if s.shm_size is not None else DEFAULT_SHM
        if mode in (None, "private") and len(groups[owner]) > 1:
            self.note(s, "ipc", f"{', '.join(groups[owner][1:])} join(s) a namespace that is not shareable: "
                                "Docker refuses that (\"non-shareable IPC\", see join-private-donor; Podman's "
                                "default is shareable): write ipc: shareable here", pos=s.at("ipc"))
            continue
        if mode in (None, "private"):
            # A probe joins a namespace to look inside it, and the engine lets only a
            # shareable one be joined: shareable isolates exactly as private does.
            containers[self.names[owner]]["ipc"] = "shareable"
            self.above.setdefault(owner, []).append(
                f"ipc: {mode or 'the engine default'} in the file; shareable here so labctl's probe can join "
                "the namespace to read its /dev/shm (nothing else joins it)")
        where = f"/dev/shm in the IPC namespace of {self.names[owner]}"
        if s.shm_size is not None:
            checks.append({"name": f"{where} is {size_text(size)}",
                           "objects": {"in": self.names[owner], "devshm_capacity": size_text(size)}})
            continue
        # Unset, each engine applies its own default: one check for each.
        for engine, default in ENGINE_DEFAULT_SHM.items():
            checks.append({"name": f"{where} is {size_text(default)} ({engine}'s default)", "engines": [engine],
                           "objects": {"in": self.names[owner], "devshm_capacity": size_text(default)}})
    checks += volume_checks(self, containers)
    checks.append({"name": "nothing left behind", "cleanup": {}})
    return checks


def volume_checks(self: Translator, containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A volume several services mount at one path: the same directory through each."""
    out = []
    running = containers_by_service(self, containers)
    for v in self.stack.volumes:
        users = [(s, m) for s in self.stack.services if s.name in running
                 for m in s.mounts if m.kind != "tmpfs" and m.source == v.name]
        if len(users) < 2:
            continue
        by_target: dict[str, list[tuple[Service, Mount]]] = {}
        for s, m in users:
            by_target.setdefault(m.target, []).append((s, m))
        paths = list(by_target)
        for target, group in by_target.items():
            (first, _), rest = group[0], group[1:]
            for s, _m in rest:
                out.append({"name": f"{target} is the same directory in {self.names[first.name]} "
                                    f"and {self.names[s.name]}",
                            "file": {"container": self.names[s.name], "path": target,
                                     "same_as": self.names[first.name]}})
            if target != paths[0]:
                s, m = group[0]
                self.note(s, "volumes", f"mounts {v.name} at {target}, {users[0][0].name} at {paths[0]}: "
                                        "no shared-path check across the two paths (it compares one path)",
                          pos=m.pos)
    return out




def containers_by_service(g: Translator, containers: dict[str, dict[str, Any]]) -> set[str]:
    return {s.name for s in g.stack.services if containers.get(g.names[s.name])}


