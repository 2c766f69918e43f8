"""A :class:`~labctl.importer.services.Stack`'s services in scenario terms: container names,
IPC modes and groups, volumes, and each container's keys (engine-free).

What a scenario cannot carry becomes a :class:`~labctl.importer.services.Note` (and a comment
above the container it concerns).
"""

from __future__ import annotations

import os
import re
from typing import Any

from labctl.importer.services import Note, Service, Stack, Volume
from labctl.runtime.labels import LABEL_PREFIX
from labctl.scenario.model import WORKLOAD_IMAGE_REPO, WORKLOADS

DEFAULT_SHM = 64 << 20  # Docker's /dev/shm when nothing sets it (Podman's: see checks)
MIN_MEMORY = 6 << 20  # the engine refuses less
DEFAULT_MEMORY = 256 << 20  # the runner's default limit
WORKLOAD_USER = "65534:65534"  # what labctl runs workloads as (and `labctl compose` writes)
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


def is_prep(s: Service) -> bool:
    """The service ``labctl compose`` adds to open named volumes (``shmlab prep --chmod``)."""
    return bool(s.image and s.image.split(":")[0] == WORKLOAD_IMAGE_REPO and s.command and s.command[0] == "prep")


def workload_of(s: Service) -> tuple[str, list[str]] | None:
    """(workload, args) when the service runs the lab's own image with a shmlab command."""
    if s.image is None or s.entrypoint or not s.command:
        return None
    repo = s.image.split("@")[0].rsplit(":", 1)[0] if ":" in s.image.split("/")[-1] else s.image.split("@")[0]
    if repo != WORKLOAD_IMAGE_REPO or s.command[0] not in WORKLOADS:
        return None
    return s.command[0], list(s.command[1:])


class Translator:
    """The services of one stack, translated; collects notes, comments and opt-ins."""

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
        if is_prep(s):
            self.above.setdefault(s.name, []).append(
                "labctl compose's volume opener: labctl opens the volumes to the workload user itself")
            return {}
        wl = workload_of(s)
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
                c["shm_size"] = size_text(s.shm_size)
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
            if k not in labels and not k.startswith(LABEL_PREFIX):
                self.note(s, "labels", f"label {k!r} is not one a scenario accepts: left out")
        if labels:
            c["labels"] = labels
        if s.memory is not None:
            if s.memory < MIN_MEMORY:
                self.note(s, "memory", f"{s.memory} bytes is below the 6m the engine accepts: "
                                       "runs with labctl's default (256m)")
            else:
                c["memory"] = size_text(s.memory)
                if s.memory_swap is not None and s.memory_swap >= s.memory:
                    c["memory_swap"] = size_text(s.memory_swap)
        if s.restart is not None and s.restart != "no":
            if RESTART_RE.match(s.restart):
                c["restart"] = s.restart
            else:
                self.note(s, "restart", f"restart policy {s.restart!r} is not one the engine knows: left out")
        if s.read_only is not True:
            c["read_only"] = False  # compose's default: a writable root
        if s.platform is not None:
            from labctl.images import platforms

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
            if is_prep(self.by_name[other]):
                continue
            name = self.names[other]
            o = self.by_name[other]
            if cond == "exited":
                out.append({name: "exited"})
            elif cond.startswith("event:"):
                out.append({name: cond[len("event:"):]})
            elif cond == "healthy":
                ready = o.ready_events or ((READY_EVENT.get(workload_of(o)[0]),) if workload_of(o) else ())  # type: ignore[index]
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



def size_text(n: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


