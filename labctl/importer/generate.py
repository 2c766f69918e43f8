"""A :class:`~labctl.importer.model.Stack` as a scenario file (the inverse of ``labctl
compose`` and ``labctl export k8s``). Engine-free.

The scenario runs every service with what the file declares (image or shmlab workload,
command, IPC mode, /dev/shm size, volumes, user, memory limit, restart policy) and
generated checks that verify on the engine what the file declares:

* IPC namespaces as grouped: each member of a group shares its owner's namespace
  (``namespace ... same: true``); owners of different groups do not (``same: false``);
* the /dev/shm size inside each group (``objects: {devshm_capacity}``, a probe in the
  group's namespace): the owner's ``shm_size``, else the engine's 64 MB;
* a volume mounted by several services at one path is one inode through each of them
  (``file: {same_as}``);
* nothing left after the run (``cleanup``).

What a scenario cannot carry becomes a :class:`Note` (stderr, located) and a comment in
the output, next to what it concerns.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import yaml

from labctl.importer.model import Mount, Note, Service, Stack, Volume
from labctl.scenario.model import WORKLOAD_IMAGE_REPO, WORKLOADS

DEFAULT_SHM = 64 << 20  # Docker's and Podman's /dev/shm when nothing sets it
MIN_MEMORY = 6 << 20  # the engine refuses less
DEFAULT_MEMORY = 256 << 20  # the runner's default limit
WORKLOAD_USER = "65534:65534"  # what labctl runs workloads as (and `labctl compose` writes)
SCHEMA_COMMENT = "# yaml-language-server: $schema=scenario.schema.json"
CONTAINER_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
SYSCTL_RE = re.compile(r"^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+|net\.[a-z0-9_.]+)$")
RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:[1-9][0-9]{0,3})?)$")
USER_RE = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,31}(:[a-z0-9_][a-z0-9_-]{0,31})?$")
LABEL_RE = re.compile(r"^(?!io\.labctl\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The event a shmlab workload prints once what others need exists: what a healthcheck on
# such a donor stands for (a reader must not start before the writer's object).
READY_EVENT = {"sysv-writer": "attached", "mmap-writer": "mapped", "posix-writer": "mapped",
               "hold": "holding", "sysv-private": "created", "msg-send": "start", "sem-counter": "start"}


@dataclass
class Generated:
    """The scenario text, the notes (also written into it as comments), and the opt-ins
    ``labctl run`` will need (``--allow-host-ipc``...)."""

    text: str
    notes: list[Note]
    opt_ins: list[str] = field(default_factory=list)
    scenario: dict[str, Any] = field(default_factory=dict)


def scenario_name(stack: Stack) -> str:
    """``<project>-imported``: lowercase letters, digits and '-', at most 63 characters."""
    base = re.sub(r"[^a-z0-9-]+", "-", stack.name.lower()).strip("-") or "stack"
    if not base[0].isalnum():
        base = "s" + base
    return (base[:54].rstrip("-") + "-imported")


def container_names(services: tuple[Service, ...]) -> dict[str, str]:
    """Service name -> a container name the scenario accepts (unique; lowercase, '-')."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for s in services:
        base = re.sub(r"[^a-z0-9-]+", "-", s.name.lower()).strip("-")
        if not base or not base[0].isalpha():
            base = "c-" + base if base else "c"
        base = base[:31].rstrip("-")
        name, i = base, 2
        while name in taken:
            suffix = f"-{i}"
            name = base[:31 - len(suffix)] + suffix
            i += 1
        taken.add(name)
        out[s.name] = name
    return out


def _is_prep(s: Service) -> bool:
    """The service ``labctl compose`` adds to open named volumes (``shmlab prep --chmod``)."""
    return bool(s.image and s.image.split(":")[0] == WORKLOAD_IMAGE_REPO and s.command and s.command[0] == "prep")


def _workload(s: Service) -> tuple[str, list[str]] | None:
    """(workload, args) when the service runs the lab's own image with a shmlab command."""
    if s.image is None or s.entrypoint or not s.command:
        return None
    repo = s.image.split("@")[0].rsplit(":", 1)[0] if ":" in s.image.split("/")[-1] else s.image.split("@")[0]
    if repo != WORKLOAD_IMAGE_REPO or s.command[0] not in WORKLOADS:
        return None
    return s.command[0], list(s.command[1:])


class _Gen:
    def __init__(self, stack: Stack, out_dir: str) -> None:
        self.stack = stack
        self.out_dir = out_dir
        self.notes: list[Note] = list(stack.notes)
        self.above: dict[str, list[str]] = {}  # container -> comment lines above it
        self.opt_ins: set[str] = set()
        self.names = container_names(stack.services)
        self.by_name = {s.name: s for s in stack.services}
        self.ipc: dict[str, str | None] = {}  # service -> scenario ipc (None: engine default)
        self.volume_names: dict[str, str] = {}
        self.top: list[Note] = []  # notes that concern no one service: comments at the top
        for n in stack.notes:  # the reader's notes go above the service they concern
            svc = next((x for x in stack.services if n.key.startswith(f"services.{x.name}.")
                        or n.key.startswith(f"containers.{x.name}.")), None)
            if svc is not None:
                self.above.setdefault(svc.name, []).append(f"{self.where(n.pos)}: {n.key.split('.', 2)[-1]}: {n.message}")
            else:
                self.top.append(n)

    def where(self, pos: Any) -> str:
        """``LINE:COL`` in the imported file, ``FILE:LINE:COL`` in another (one it extends)."""
        return f"{pos.line}:{pos.col}" if pos.file == self.stack.file else str(pos)

    def note(self, s: Service | None, key: str, message: str, pos: Any = None) -> None:
        where = pos if pos is not None else (s.at(key) if s is not None else self.stack.pos)
        n = Note(where, key if s is None else f"services.{s.name}.{key}" if key else f"services.{s.name}", message)
        self.notes.append(n)
        if s is not None:
            self.above.setdefault(s.name, []).append(f"{self.where(where)}: {key or s.name}: {message}")

    # ----------------------------------------------------------------- IPC groups

    def resolve_ipc(self) -> None:
        """Each service's IPC mode in scenario terms; unknown or external donors become private."""
        for s in self.stack.services:
            mode = s.ipc
            if mode is not None and mode.startswith("service:"):
                donor = mode[len("service:"):]
                if donor not in self.by_name:
                    self.note(s, "ipc", f"joins '{donor}', which is not a service of this file: runs with its "
                                        "own namespace here")
                    mode = "private"
                elif donor == s.name:
                    self.note(s, "ipc", "joins its own namespace: runs with its own namespace here")
                    mode = "private"
                else:
                    mode = "container:" + self.names[donor]
            elif mode is not None and mode.startswith("container:"):
                self.note(s, "ipc", f"joins the existing container '{mode[len('container:'):]}', which labctl "
                                    "does not start: runs with its own namespace here")
                mode = "private"
            self.ipc[s.name] = mode
        # cycles (a joins b joins a): break at the first member
        for s in self.stack.services:
            seen = [s.name]
            cur = s.name
            while (m := self.ipc.get(cur)) and m.startswith("container:"):
                nxt = self._service_of(m[len("container:"):])
                if nxt in seen:
                    self.note(self.by_name[cur], "ipc", "a cycle of ipc joins: runs with its own namespace here")
                    self.ipc[cur] = "private"
                    break
                seen.append(nxt)
                cur = nxt

    def _service_of(self, container: str) -> str:
        return next(k for k, v in self.names.items() if v == container)

    def owner(self, name: str) -> str:
        while (m := self.ipc.get(name)) and m.startswith("container:"):
            name = self._service_of(m[len("container:"):])
        return name

    def groups(self) -> dict[str, list[str]]:
        """Owner service -> its members (owner first), in file order."""
        out: dict[str, list[str]] = {}
        for s in self.stack.services:
            out.setdefault(self.owner(s.name), []).append(s.name)
        for owner, members in out.items():
            members.sort(key=lambda n: n != owner)
        return out

    # ----------------------------------------------------------------- volumes

    def volumes(self) -> dict[str, dict[str, Any]]:
        used = {m.source for s in self.stack.services for m in s.mounts if m.kind != "tmpfs" and m.source}
        taken: set[str] = set()
        out: dict[str, dict[str, Any]] = {}
        for v in self.stack.volumes:
            if v.name not in used:
                continue
            name = re.sub(r"[^a-z0-9-]+", "-", v.name.lower()).strip("-") or "vol"
            if not name[0].isalpha():
                name = "v-" + name
            name, base, i = name[:31].rstrip("-"), name[:28].rstrip("-"), 2
            while name in taken:
                name, i = f"{base}-{i}", i + 1
            taken.add(name)
            self.volume_names[v.name] = name
            out[name] = self.volume_body(v)
        return out

    def volume_body(self, v: Volume) -> dict[str, Any]:
        if v.kind == "tmpfs":
            return {"type": "tmpfs-volume", **({"size": v.size} if v.size else {})}
        if v.kind == "bind":
            assert v.path is not None
            rel = os.path.relpath(v.path, self.out_dir)
            if rel == os.pardir or rel.startswith(os.pardir + os.sep):
                self.opt_ins.add("--allow-host-paths")
                path = v.path
            else:
                path = rel
            return {"type": "hostdir", "path": path}
        if v.external:
            n = Note(v.pos, f"volumes.{v.name}.external", "an existing volume: the scenario makes a fresh one "
                                                           "per run instead")
            self.notes.append(n)
            self.top.append(n)
        return {}

    # ----------------------------------------------------------------- one container

    def container(self, s: Service) -> dict[str, Any]:
        c: dict[str, Any] = {}
        if _is_prep(s):
            self.above.setdefault(s.name, []).append(
                "labctl compose's volume opener: labctl opens the volumes to the workload user itself")
            return {}
        wl = _workload(s)
        if wl is not None:
            workload, args = wl
            if "--human" in args:
                args = [a for a in args if a != "--human"]
                self.note(s, "command", "--human dropped: labctl reads shmlab's JSON events "
                                        "(namespace ids, start conditions)")
            c["workload"] = workload
            if args:
                c["args"] = args
        elif s.image is None:
            self.note(s, "image", "no image: nothing to run", pos=s.pos)
            return {}
        elif not IMAGE_RE.match(s.image):
            self.note(s, "image", f"image reference {s.image!r} is not one a scenario accepts "
                                  "(an unresolved variable?)")
            return {}
        else:
            c["image"] = s.image
            if s.entrypoint is not None:
                c["entrypoint"] = list(s.entrypoint)
            if s.command is not None:
                c["command"] = list(s.command)
        ipc = self.ipc.get(s.name)
        if ipc is not None:
            c["ipc"] = ipc
        self.after(s, c)
        mounts, tmpfs = [], []
        for m in s.mounts:
            if m.kind == "tmpfs":
                if m.size is not None:
                    self.note(s, "tmpfs", f"the size of the tmpfs at {m.target} is not carried: a scenario "
                                          "tmpfs has the engine's default size", pos=m.pos)
                if wl is not None and m.target == "/run/labctl-events":
                    continue  # labctl compose's event markers: labctl reads the events itself
                tmpfs.append(m.target)
            elif m.source is not None and m.source in self.volume_names:
                mounts.append(f"{self.volume_names[m.source]}:{m.target}" + (":ro" if m.read_only else ""))
        if mounts:
            c["volumes"] = mounts
        if tmpfs:
            c["tmpfs"] = tmpfs
        if s.user is not None:
            if not USER_RE.match(s.user):
                self.note(s, "user", f"user {s.user!r} is not UID[:GID] or a name: runs as the image's user")
            elif not (wl is not None and s.user == WORKLOAD_USER):
                c["user"] = s.user
        if s.shm_size is not None:
            owner = self.owner(s.name)
            if owner != s.name and self.ipc.get(owner) is not None:
                self.note(s, "shm_size", f"ignored by the engine: {s.name} joins the namespace of "
                                         f"{self.by_name[owner].name} and sees its /dev/shm")
            elif ipc in ("host", "none"):
                self.note(s, "shm_size", f"ignored by the engine with ipc: {ipc}")
            else:
                c["shm_size"] = _size(s.shm_size)
        self.sysctls(s, c)
        env = dict(s.env)
        if wl is not None:
            env.pop("SHMLAB_EVENT_DIR", None)
        bad = [k for k in env if not ENV_RE.match(k)]
        for k in bad:
            self.note(s, "environment", f"variable name {k!r} is not one a scenario accepts: left out")
            env.pop(k)
        if env:
            c["env"] = env
        labels = {k: v for k, v in s.labels if LABEL_RE.match(k)}
        for k, _ in s.labels:
            if k not in labels and not k.startswith("io.labctl."):
                self.note(s, "labels", f"label {k!r} is not one a scenario accepts: left out")
        if labels:
            c["labels"] = labels
        if s.memory is not None:
            if s.memory < MIN_MEMORY:
                self.note(s, "memory", f"{s.memory} bytes is below the 6m the engine accepts: "
                                       "runs with labctl's default (256m)")
            else:
                c["memory"] = _size(s.memory)
                if s.memory_swap is not None and s.memory_swap >= s.memory:
                    c["memory_swap"] = _size(s.memory_swap)
        if s.restart is not None and s.restart != "no":
            if RESTART_RE.match(s.restart):
                c["restart"] = s.restart
            else:
                self.note(s, "restart", f"restart policy {s.restart!r} is not one the engine knows: left out")
        if s.read_only is not True:
            c["read_only"] = False  # compose's default: a writable root
        if s.platform is not None:
            from labctl import platforms

            plat = platforms.lookup(s.platform)
            if plat is None:
                self.note(s, "platform", f"platform {s.platform!r} is not one labctl runs: the engine's own")
            else:
                c["platform"] = plat.name
        if s.cap_add:
            c["cap_add"] = list(s.cap_add)
            self.opt_ins.add("--allow-privileged")
        if s.privileged:
            c["privileged"] = True
            self.opt_ins.add("--allow-privileged")
        if s.pid is not None:
            if s.pid == "host":
                c["pid"] = "host"
                self.opt_ins.add("--allow-privileged")
            elif s.pid.startswith("service:") and s.pid[8:] in self.names:
                c["pid"] = "container:" + self.names[s.pid[8:]]
            else:
                self.note(s, "pid", f"pid mode {s.pid!r} is not carried: a pid namespace of its own")
        if ipc == "host":
            self.opt_ins.add("--allow-host-ipc")
        return c

    def sysctls(self, s: Service, c: dict[str, Any]) -> None:
        ok = {}
        for k, v in s.sysctls:
            if not SYSCTL_RE.match(k):
                self.note(s, "sysctls", f"{k} is not a namespaced sysctl a container may set: left out")
            elif self.ipc.get(s.name) == "host" and not k.startswith("net."):
                self.note(s, "sysctls", f"{k} cannot be set with ipc: host: left out")
            else:
                ok[k] = v
        if ok:
            c["sysctls"] = ok

    def after(self, s: Service, c: dict[str, Any]) -> None:
        """``depends_on`` -> ``after``: started, exited, or the donor's ready event."""
        out: list[Any] = []
        donor = self.ipc.get(s.name) or ""
        for other, cond, pos in s.depends:
            if other not in self.by_name:
                self.note(s, "depends_on", f"'{other}' is not a service of this file: left out", pos=pos)
                continue
            if _is_prep(self.by_name[other]):
                continue
            name = self.names[other]
            o = self.by_name[other]
            if cond == "exited":
                out.append({name: "exited"})
            elif cond.startswith("event:"):
                out.append({name: cond[len("event:"):]})
            elif cond == "healthy":
                ready = o.ready_events or ((READY_EVENT.get(_workload(o)[0]),) if _workload(o) else ())  # type: ignore[index]
                ready = tuple(e for e in ready if e)
                if ready:
                    out.append({name: ready[0]})
                    if not o.ready_events:
                        self.note(s, "depends_on", f"service_healthy: labctl has no healthchecks; {s.name} starts "
                                                   f"once {other} printed '{ready[0]}' (shmlab's ready event)", pos=pos)
                else:
                    out.append(name)
                    self.note(s, "depends_on", f"service_healthy: labctl has no healthchecks; {s.name} starts "
                                               f"once {other} runs (edit after: to wait for a line of its output, "
                                               "after: {NAME: /REGEX/})", pos=pos)
            elif donor != "container:" + name:  # joining implies starting after the donor
                out.append(name)
        if out:
            c["after"] = out[0] if len(out) == 1 else out

    # ----------------------------------------------------------------- checks

    def checks(self, containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
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
            checks.append({"name": f"/dev/shm in the IPC namespace of {self.names[owner]} is {_size(size)}",
                           "objects": {"in": self.names[owner], "devshm_capacity": _size(size)}})
        checks += self.volume_checks(containers)
        checks.append({"name": "nothing left behind", "cleanup": {}})
        return checks

    def volume_checks(self, containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
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


def hold_lone_namespaces(stack: Stack) -> tuple[Stack, dict[str, str]]:
    """A service alone in an IPC namespace of its own (ipc private, shareable or unset, no
    restart policy) gets a holder: a ``hold`` container that owns the namespace and the
    /dev/shm size, which the service joins. Isolation is the same; the namespace now lives
    for the whole run, so a probe can join it even when the service exits at once, and its
    id is never reused by another namespace during the checks. Services with a restart
    policy keep their own namespace (a restart gives them a new one; a holder would not).
    Returns the new stack and {holder: service}."""
    joined = {s.ipc[len("service:"):] for s in stack.services if s.ipc and s.ipc.startswith("service:")}
    taken = {s.name for s in stack.services}
    out: list[Service] = []
    held: dict[str, str] = {}
    for s in stack.services:
        lone = (s.ipc in (None, "private", "shareable") and s.name not in joined and not s.holder
                and s.restart in (None, "no") and s.image is not None and not _is_prep(s))
        if not lone:
            out.append(s)
            continue
        name, i = f"{s.name}-ipc", 2
        while name in taken:
            name, i = f"{s.name}-ipc-{i}", i + 1
        taken.add(name)
        held[name] = s.name
        out.append(Service(name=name, image=f"{WORKLOAD_IMAGE_REPO}:latest", command=("hold",), ipc="shareable",
                           shm_size=s.shm_size, read_only=True, holder=True, pos=s.pos,
                           keys={"shm_size": s.at("shm_size")}))
        out.append(replace(s, ipc=f"service:{name}", shm_size=None))
    return replace(stack, services=tuple(out)), held


def containers_by_service(g: _Gen, containers: dict[str, dict[str, Any]]) -> set[str]:
    return {s.name for s in g.stack.services if containers.get(g.names[s.name])}


def _size(n: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


class _Dumper(yaml.SafeDumper):
    """Lists of scalars on one line (``args: [--key, '1234']``), as the library writes them."""


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _dump(value: Any, indent: int = 0) -> list[str]:
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)
    return [" " * indent + line for line in text.splitlines()]


def _block(key: str, text: str) -> list[str]:
    """``key: |`` and the text's lines, indented (the library's description style)."""
    return [f"{key}: |"] + [f"  {line}" if line else "" for line in text.rstrip("\n").splitlines()]


def generate(stack: Stack, *, out_dir: str = ".", command: str = "", name: str | None = None) -> Generated:
    """The scenario for ``stack`` as YAML text with comments. ``out_dir``: the folder the
    file is written to (host paths are made relative to it); ``command``: how it was made,
    for the header. Notes come back (and are written in as comments); never raises for
    what the file declares. When no service can run, ``Generated.scenario`` has no
    containers (the caller refuses it)."""
    stack, held = hold_lone_namespaces(stack)
    g = _Gen(stack, os.path.abspath(out_dir))
    for holder, owner in held.items():
        g.above.setdefault(holder, []).append(
            f"holds the IPC namespace and /dev/shm of {owner}, which is alone in it as in the file, so that "
            f"labctl's probe can look inside even after {owner} exited (as a pod's sandbox does)")
        mode = next(x for x in stack.services if x.name == owner).keys.get("ipc")
        g.above.setdefault(owner, []).append(
            f"joins {holder}, which holds its namespace" + (f" (ipc at {g.where(mode)} in the file)" if mode else ""))
    g.resolve_ipc()
    volumes = g.volumes()
    containers: dict[str, dict[str, Any]] = {}
    for s in stack.services:
        containers[g.names[s.name]] = g.container(s)
    runnable = {n: c for n, c in containers.items() if c}
    # a joiner of a service that cannot run would be refused: its own namespace then
    for s in stack.services:
        ipc = runnable.get(g.names[s.name], {}).get("ipc", "")
        if ipc.startswith("container:") and ipc[len("container:"):] not in runnable:
            runnable[g.names[s.name]]["ipc"] = "private"
            g.ipc[s.name] = "private"
    checks = g.checks(runnable) if runnable else []
    kind = "Compose file" if stack.kind == "compose" else "Kubernetes manifests"
    desc = (f"{stack.name}: the services of {os.path.basename(stack.file)}, imported.\n"
            f"Made by `{command or 'labctl import'}` from the {kind}.\n"
            "The checks verify on the engine what the file declares: which services share an IPC\n"
            "namespace and which do not, the size of /dev/shm in each namespace, the volumes mounted\n"
            "at one path by several services, and that nothing is left after the run. Edit from here:\n"
            "add checks of what your programs write (segment, file, events), then `labctl run` it.\n")
    scenario: dict[str, Any] = {"version": 1, "name": name or scenario_name(stack), "description": desc,
                                "tags": ["imported"]}
    if volumes:
        scenario["volumes"] = volumes
    scenario["containers"] = runnable
    scenario["checks"] = checks
    lines = [SCHEMA_COMMENT,
             f"# Generated by `{command or 'labctl import'}` from {stack.file}.",
             "# Editor completion: `labctl schema > scenario.schema.json` next to this file."]
    opt = sorted(g.opt_ins)
    if opt:
        lines.append(f"# Run it with `labctl run {' '.join(opt)} FILE`: the file asks for it.")
    lines += [f"# {g.where(n.pos)}: {n.key}: {n.message}" for n in g.top]
    lines += _dump({"version": 1, "name": scenario["name"]})
    lines += _block("description", desc)
    lines += _dump({"tags": scenario["tags"]})
    if volumes:
        lines += _dump({"volumes": volumes})
    lines.append("containers:")
    for s in stack.services:
        name = g.names[s.name]
        lines += [f"  # {c}" for c in g.above.get(s.name, [])]
        if name in runnable:
            lines += _dump({name: runnable[name]}, 2)
        else:
            lines.append(f"  # {s.name}: not imported")
    if not runnable:
        lines.append("  {}")
    lines += _dump({"checks": checks}) if checks else ["checks: []"]
    return Generated("\n".join(lines) + "\n", g.notes, opt, scenario)
