"""Read Compose files into a :class:`~labctl.importer.services.Stack`.

The files are read by ``labctl.stack`` (the loader ``labctl check`` uses): interpolation
from the environment and the project's ``.env``, ``extends`` (same file or ``file:``),
several ``-f`` files merged as one project, merge keys, profiles; every value keeps its
FILE:LINE:COL. Here each resolved service's keys that concern a scenario become a
:class:`~labctl.importer.services.Service`; the keys a scenario cannot carry become notes.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.importer.services import Mount, Note, Service, Stack, Volume
from labctl.importer.yamltree import Y, from_stack_node, read_text
from labctl.runtime.labels import LABEL_PREFIX
from labctl.scenario.model import Pos
from labctl.stack import compose_spec as stack_compose
from labctl.stack import merge as stack_merge
from labctl.stack.interpolate import project_env
from labctl.stack.yamlpos import load_documents
from labctl.units import parse_size

# Keys whose value labctl enforces anyway or that do not change what runs.
QUIET = {"container_name", "hostname", "stop_grace_period", "stop_signal", "cap_drop", "pids_limit",
         "init", "logging", "profiles", "extends", "tty", "stdin_open", "domainname", "labels",
         "healthcheck", "depends_on", "build", "pull_policy"}
HANDLED = {"image", "command", "entrypoint", "ipc", "shm_size", "user", "mem_limit", "memswap_limit",
           "restart", "read_only", "volumes", "tmpfs", "environment", "sysctls", "cap_add", "privileged",
           "pid", "platform", "deploy", "network_mode", "security_opt"}
EVENT_DIR = "/run/labctl-events/"  # where labctl compose's healthchecks look for shmlab's event markers
_NOTE = re.compile(r"^(.*):(\d+):(\d+): (.*)$")


def _err(pos: Any, key: str, message: str) -> ScenarioErrors:
    return ScenarioErrors([ScenarioError(pos.file, pos.line, pos.col, key, message)])


def _as_map(y: Y, sep: str = "=") -> Y:
    """``[K=V, ...]`` (environment, labels, sysctls) as a mapping; a mapping as is."""
    if not y.is_seq:
        return y
    out: dict[str, Y] = {}
    keys = {}
    for item in y.value:
        k, has, v = str(item.value).partition(sep)
        out[k] = Y(v if has else None, item.pos)
        keys[k] = item.pos
    return Y(out, y.pos, keys)


def _deps_map(y: Y) -> Y:
    if y.is_seq:
        return Y({str(i.value): Y({"condition": Y("service_started", i.pos)}, i.pos) for i in y.value},
                 y.pos, {str(i.value): i.pos for i in y.value})
    return y


class Project:
    """The folder relative paths are resolved from, and the interpolation variables."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.dir = folder
        self.env = env


def resolve(files: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[Y, Project, list[Note]]:
    """The Compose project of ``files`` (``docker compose -f A -f B``) with interpolation,
    extends and merging applied by ``labctl.stack``, as a Y tree. ScenarioErrors (exit 2)."""
    piped = files[0] == "-" or files[0].startswith("/dev/fd/")
    folder = Path.cwd() if piped else Path(files[0]).resolve().parent
    env = project_env(folder, environ)
    texts: list[str] = []
    cache: dict[str, Any] = {}

    def load(path: str) -> Any:
        key = path if path == "-" or path.startswith("/dev/fd/") else os.path.abspath(path)
        if key not in cache:
            label = "<stdin>" if path == "-" else path
            docs = load_documents(read_text(path), label)
            if len(docs) != 1 or not docs[0].is_map or not stack_compose.is_compose(docs[0]):
                where = docs[min(1, len(docs) - 1)] if docs else None
                raise ScenarioErrors([ScenarioError(label, where.line if where else 1, where.col if where else 1, "",
                                                    "not a Compose file: expected one document with services:")])
            doc = stack_compose.interpolate(docs[0], env, texts)
            stack_compose.check_shape(doc)
            cache[key] = doc
            cache[key] = stack_merge.resolve_extends(doc, load)
        return cache[key]

    doc = stack_merge.merge_projects([load(f) for f in files])
    notes = []
    for t in texts:
        m = _NOTE.match(t)
        notes.append(Note(Pos(m.group(1), int(m.group(2)), int(m.group(3))), "interpolation", m.group(4))
                     if m else Note(Pos(files[0], 1, 1), "interpolation", t))
    return from_stack_node(doc), Project(folder, env), notes


# --------------------------------------------------------------------------- one service


def _strings(y: Y, split: bool) -> tuple[str, ...]:
    if isinstance(y.value, str) and split:
        return tuple(shlex.split(y.value))
    if y.is_seq:
        return tuple("" if i.value is None else _scalar_text(i.value) for i in y.value)
    return (_scalar_text(y.value),)


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _size(y: Y, notes: list[Note], key: str) -> int | None:
    try:
        return parse_size(y.value if not isinstance(y.value, float) else int(y.value))
    except ValueError as e:
        notes.append(Note(y.pos, key, f"{e}: left out"))
        return None


def _pairs(y: Y | None, notes: list[Note], key: str, env: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    if y is None:
        return ()
    m = _as_map(y)
    if not m.is_map:
        notes.append(Note(y.pos, key, "expected a mapping or a list of KEY=VALUE: left out"))
        return ()
    out = []
    for k, v in m.value.items():
        if v.value is None:
            if env is not None and k in env:
                out.append((k, env[k]))
            continue
        out.append((k, _scalar_text(v.value)))
    return tuple(out)


class ServiceReader:
    """One resolved service mapping -> a Service, adding notes and volumes to the stack."""

    def __init__(self, project: Project, volumes: dict[str, Volume], notes: list[Note]) -> None:
        self.project = project
        self.volumes = volumes
        self.notes = notes

    def note(self, name: str, y: Y, key: str, message: str) -> None:
        self.notes.append(Note(y.at(key), f"services.{name}.{key}", message))

    def read(self, name: str, y: Y) -> Service:
        kw: dict[str, Any] = {}
        g = y.get
        path = f"services.{name}"
        for key in y.value:
            if key.startswith("x-") or key in QUIET or key in HANDLED:
                continue
            self.note(name, y, key, "not carried by a scenario: left out")
        if g("image") is not None:
            kw["image"] = _scalar_text(g("image").value)  # type: ignore[union-attr]
        elif g("build") is not None:
            self.note(name, y, "build", "a scenario runs images: build it, then name the image in image:")
        if g("command") is not None and g("command").value is not None:  # type: ignore[union-attr]
            kw["command"] = _strings(g("command"), True)  # type: ignore[arg-type]
        if g("entrypoint") is not None and g("entrypoint").value is not None:  # type: ignore[union-attr]
            kw["entrypoint"] = _strings(g("entrypoint"), True)  # type: ignore[arg-type]
        if g("ipc") is not None:
            kw["ipc"] = str(g("ipc").value)  # type: ignore[union-attr]
        if g("shm_size") is not None:
            kw["shm_size"] = _size(g("shm_size"), self.notes, f"{path}.shm_size")  # type: ignore[arg-type]
        if g("user") is not None:
            kw["user"] = _scalar_text(g("user").value)  # type: ignore[union-attr]
        limits = self._deploy(name, y, kw)
        if g("mem_limit") is not None:
            kw["memory"] = _size(g("mem_limit"), self.notes, f"{path}.mem_limit")  # type: ignore[arg-type]
        elif limits is not None:
            kw["memory"] = _size(limits, self.notes, f"{path}.deploy.resources.limits.memory")
        if g("memswap_limit") is not None and isinstance(g("memswap_limit").value, (int, str)):  # type: ignore[union-attr]
            kw["memory_swap"] = _size(g("memswap_limit"), self.notes, f"{path}.memswap_limit")  # type: ignore[arg-type]
        if g("restart") is not None:
            kw["restart"] = _scalar_text(g("restart").value)  # type: ignore[union-attr]
        if g("read_only") is not None:
            kw["read_only"] = bool(g("read_only").value)  # type: ignore[union-attr]
        kw["mounts"] = self._mounts(name, y)
        kw["env"] = _pairs(g("environment"), self.notes, f"{path}.environment", self.project.env)
        kw["labels"] = tuple((k, v) for k, v in _pairs(g("labels"), self.notes, f"{path}.labels")
                             if not k.startswith(LABEL_PREFIX))
        kw["sysctls"] = _pairs(g("sysctls"), self.notes, f"{path}.sysctls")
        if g("cap_add") is not None:
            kw["cap_add"] = _strings(g("cap_add"), False)  # type: ignore[arg-type]
        if g("privileged") is not None:
            kw["privileged"] = bool(g("privileged").value)  # type: ignore[union-attr]
        if g("pid") is not None:
            kw["pid"] = str(g("pid").value)  # type: ignore[union-attr]
        if g("platform") is not None:
            kw["platform"] = str(g("platform").value)  # type: ignore[union-attr]
        nm = g("network_mode")
        if nm is None:
            self.notes.append(Note(y.pos, f"services.{name}", "no network_mode: compose gives it the project's "
                                                              "network; labctl runs it with network none (a "
                                                              "scenario may say network: bridge, with "
                                                              "--allow-privileged)"))
        elif nm.value != "none":
            self.note(name, y, "network_mode", f"network_mode {nm.value}: labctl runs every container with "
                                               "network none unless a scenario says network: bridge "
                                               "(needs --allow-privileged)")
        so = g("security_opt")
        if so is not None and so.is_seq:
            for item in so.value:
                if str(item.value).replace("=", ":") not in ("no-new-privileges:true", "no-new-privileges"):
                    self.notes.append(Note(item.pos, f"{path}.security_opt",
                                           f"{item.value} is not carried (labctl sets no-new-privileges only)"))
        kw["depends"] = self._depends(name, y)
        hc = g("healthcheck")
        if hc is not None and hc.is_map and not (hc.get("disable") is not None and hc.get("disable").value):  # type: ignore[union-attr]
            kw["healthcheck"] = True
            test = hc.get("test")
            if test is not None and test.is_seq:
                words = [str(i.value) for i in test.value]
                kw["ready_events"] = tuple(w.rsplit(".", 1)[1] for w in words
                                           if w.startswith(EVENT_DIR) and "." in w[len(EVENT_DIR):])
        return Service(name=name, keys=dict(y.key_positions), pos=y.pos, **kw)

    def _deploy(self, name: str, y: Y, kw: dict[str, Any]) -> Y | None:
        d = y.get("deploy")
        if d is None or not d.is_map:
            return None
        limits = None
        res = d.get("resources")
        if res is not None and res.is_map and res.get("limits") is not None:
            limits = res.get("limits").get("memory")  # type: ignore[union-attr]
        rp = d.get("restart_policy")
        if rp is not None and rp.is_map and "restart" not in y.value:
            cond = str(rp.get("condition").value) if rp.get("condition") is not None else "any"  # type: ignore[union-attr]
            n = rp.get("max_attempts")
            kw["restart"] = {"none": "no", "any": "always"}.get(
                cond, "on-failure" + (f":{n.value}" if n is not None and n.value else ""))
        rep = d.get("replicas")
        if rep is not None and rep.value not in (None, 1):
            self.notes.append(Note(rep.pos, f"services.{name}.deploy.replicas",
                                   "a scenario runs one container per service: one replica here"))
        return limits

    def _depends(self, name: str, y: Y) -> tuple[tuple[str, str, Any], ...]:
        d = y.get("depends_on")
        if d is None:
            return ()
        d = _deps_map(d)
        cond = {"service_started": "started", "service_healthy": "healthy",
                "service_completed_successfully": "exited"}
        out = []
        for other, body in d.value.items():
            c = body.get("condition") if body.is_map else None
            out.append((other, cond.get(str(c.value) if c is not None else "service_started", "started"), d.at(other)))
        return tuple(out)

    def _bind(self, source: str, pos: Any) -> str:
        host = os.path.expanduser(source)
        host = str((self.project.dir / host).resolve()) if not os.path.isabs(host) else os.path.normpath(host)
        name = "bind-" + (Path(host).name or "root")
        for v in self.volumes.values():
            if v.kind == "bind" and v.path == host:
                return v.name
        base, i = name, 2
        while name in self.volumes:
            name, i = f"{base}-{i}", i + 1
        self.volumes[name] = Volume(name, "bind", path=host, pos=pos)
        if Path(host).is_file():
            self.notes.append(Note(pos, "volumes", f"{source} is a single file: bind its directory instead "
                                                   "(an editor that replaces the file breaks the shared inode)"))
        return name

    def _named(self, name: str, source: str, pos: Any, svc: str) -> str:
        if source not in self.volumes:
            self.notes.append(Note(pos, f"services.{svc}.volumes", f"volume '{source}' is not declared under "
                                                                    "the top-level volumes: a fresh one here"))
            self.volumes[source] = Volume(source, pos=pos)
        return source

    def _mounts(self, name: str, y: Y) -> tuple[Mount, ...]:
        out: list[Mount] = []
        vols = y.get("volumes")
        for i, item in enumerate(vols.value if vols is not None and vols.is_seq else []):
            if item.is_map:
                kind = str(item.get("type").value) if item.get("type") is not None else "volume"  # type: ignore[union-attr]
                src = item.get("source")
                target = str(item.get("target").value) if item.get("target") is not None else ""  # type: ignore[union-attr]
                ro = bool(item.get("read_only").value) if item.get("read_only") is not None else False  # type: ignore[union-attr]
                if kind == "tmpfs":
                    t = item.get("tmpfs")
                    size = _size(t.get("size"), self.notes, f"services.{name}.volumes") \
                        if t is not None and t.is_map and t.get("size") is not None else None  # type: ignore[arg-type]
                    out.append(Mount("tmpfs", None, target, ro, size, item.pos))
                    continue
                if kind not in ("volume", "bind"):
                    self.notes.append(Note(item.pos, f"services.{name}.volumes", f"a {kind} mount is not carried"))
                    continue
                source = str(src.value) if src is not None and src.value is not None else None
            else:
                parts = str(item.value).split(":")
                if len(parts) == 1:
                    source, target, ro, kind = None, parts[0], False, "volume"
                else:
                    source, target = parts[0], parts[1]
                    ro = len(parts) > 2 and "ro" in parts[2].split(",")
                    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            if not target.startswith("/"):
                self.notes.append(Note(item.pos, f"services.{name}.volumes", f"target {target!r} is not absolute"))
                continue
            if source is None:  # anonymous: one of its own
                vname = f"{name}-anon-{i}"
                self.volumes[vname] = Volume(vname, pos=item.pos)
                out.append(Mount("volume", vname, target, ro, None, item.pos))
            elif kind == "bind":
                out.append(Mount("bind", self._bind(source, item.pos), target, ro, None, item.pos))
            else:
                out.append(Mount("volume", self._named(name, source, item.pos, name), target, ro, None, item.pos))
        tm = y.get("tmpfs")
        if tm is not None:
            for item in (tm.value if tm.is_seq else [tm]):
                target, _, opts = str(item.value).partition(":")
                size = None
                for o in opts.split(","):
                    if o.startswith("size="):
                        size = _size(Y(o[5:], item.pos), self.notes, f"services.{name}.tmpfs")
                out.append(Mount("tmpfs", None, target, False, size, item.pos))
        return tuple(out)


# --------------------------------------------------------------------------- the file


def _volumes(doc: Y, notes: list[Note]) -> dict[str, Volume]:
    out: dict[str, Volume] = {}
    vols = doc.get("volumes")
    if vols is None or not vols.is_map:
        return out
    for name, body in vols.value.items():
        pos = vols.at(name)
        if body.value is None or not body.is_map:
            out[name] = Volume(name, pos=pos)
            continue
        ext = body.get("external")
        opts = body.get("driver_opts")
        size = None
        kind = "volume"
        if opts is not None and opts.is_map and opts.get("type") is not None and opts.get("type").value == "tmpfs":  # type: ignore[union-attr]
            kind = "tmpfs"
            o = opts.get("o")
            for part in str(o.value if o is not None else "").split(","):
                if part.startswith("size="):
                    size = _size(Y(part[5:], o.pos), notes, f"volumes.{name}.driver_opts.o")  # type: ignore[union-attr]
        elif body.get("driver") is not None and body.get("driver").value not in ("local",):  # type: ignore[union-attr]
            notes.append(Note(body.at("driver"), f"volumes.{name}.driver",
                              "only local volumes are carried: a local volume here"))
        out[name] = Volume(name, kind, size, external=bool(ext is not None and ext.value), pos=pos)  # type: ignore[arg-type]
    return out


def read_compose(path: str | Sequence[str], *, profiles: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None) -> Stack:
    """The services a ``docker compose [-f FILE]... up`` would start (with these profiles),
    as a Stack. ``env``: interpolation variables (default: the process environment, over
    the project's ``.env``). ScenarioErrors (exit 2) when a file cannot be read or there
    is no service."""
    files = [path] if isinstance(path, str) else list(path)
    doc, project, notes = resolve(files, env)
    services = doc.get("services")
    if services is None or not services.is_map or not services.value:
        raise _err(doc.pos, "services", "no services: nothing to import")
    volumes = _volumes(doc, notes)
    sr = ServiceReader(project, volumes, notes)
    out = []
    for name, svc in services.value.items():
        if svc.value is None:
            svc = Y({}, svc.pos)
        prof = svc.get("profiles")
        wanted = {str(p.value) for p in prof.value} if prof is not None and prof.is_seq else set()
        if wanted and not wanted & set(profiles) and "*" not in profiles:
            notes.append(Note(svc.at("profiles"), f"services.{name}.profiles",
                              f"in profile(s) {', '.join(sorted(wanted))}, not started by default: left out "
                              "(--profile to include it)"))
            continue
        out.append(sr.read(name, svc))
    if not out:
        raise _err(services.pos, "services", "every service is in a profile: nothing to import (use --profile)")
    name_y = doc.get("name")
    piped = files[0] == "-" or files[0].startswith("/dev/fd/")
    project_name = str(name_y.value) if name_y is not None and name_y.value else (
        project.env.get("COMPOSE_PROJECT_NAME") or ("stack" if piped else project.dir.name) or "stack")
    label = "<stdin>" if files[0] == "-" else files[0]
    return Stack("compose", project_name, label, tuple(out), tuple(volumes.values()), tuple(notes), doc.pos)


__all__ = ["read_compose", "resolve"]
