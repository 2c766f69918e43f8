"""Read a Compose file into a :class:`~labctl.importer.model.Stack`.

A minimal reader for ``labctl import``: interpolation (``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}``, ``$VAR``, ``$$``) from the environment and the
``.env`` file next to the Compose file, ``extends`` (same file or ``file:``), merge keys
and profiles. Then each service's keys that concern a scenario become a
:class:`~labctl.importer.model.Service`; the keys a scenario cannot carry become notes.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.importer.model import Mount, Note, Service, Stack, Volume
from labctl.importer.yamltree import Y, load_one, read_text
from labctl.units import parse_size

# Keys whose value labctl enforces anyway or that do not change what runs.
QUIET = {"container_name", "hostname", "stop_grace_period", "stop_signal", "cap_drop", "pids_limit",
         "init", "logging", "profiles", "extends", "tty", "stdin_open", "domainname", "labels",
         "healthcheck", "depends_on", "build", "pull_policy"}
HANDLED = {"image", "command", "entrypoint", "ipc", "shm_size", "user", "mem_limit", "memswap_limit",
           "restart", "read_only", "volumes", "tmpfs", "environment", "sysctls", "cap_add", "privileged",
           "pid", "platform", "deploy", "network_mode", "security_opt"}
EVENT_DIR = "/run/labctl-events/"  # where labctl compose's healthchecks look for shmlab's event markers
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (comments and blank lines skipped, quotes removed)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


class Interpolator:
    """Compose's variable substitution over Y values; problems become notes."""

    def __init__(self, env: dict[str, str], notes: list[Note]) -> None:
        self.env = env
        self.notes = notes

    def text(self, s: str, pos: Any) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name = m.group(2) or m.group(5)
            op, arg = m.group(3), m.group(4) or ""
            value = self.env.get(name)
            unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
            if op in (":-", "-"):
                return self.text(arg, pos) if (value is None if op == "-" else unset_or_empty) else value or ""
            if op in (":+", "+"):
                return self.text(arg, pos) if not (value is None if op == "+" else unset_or_empty) else ""
            if op in (":?", "?") and (value is None if op == "?" else unset_or_empty):
                self.notes.append(Note(pos, name, f"required variable is not set ({arg or 'no message'}): empty here"))
                return ""
            if value is None:
                self.notes.append(Note(pos, name, "variable is not set: empty here (as compose does)"))
                return ""
            return value

        return _VAR.sub(sub, s)

    def __call__(self, y: Y) -> Y:
        if isinstance(y.value, dict):
            return Y({k: (v if k.startswith("x-") else self(v)) for k, v in y.value.items()}, y.pos, y.keys)
        if isinstance(y.value, list):
            return Y([self(v) for v in y.value], y.pos)
        if isinstance(y.value, str) and "$" in y.value:
            return Y(self.text(y.value, y.pos), y.pos)
        return y


def _err(pos: Any, key: str, message: str) -> ScenarioErrors:
    return ScenarioErrors([ScenarioError(pos.file, pos.line, pos.col, key, message)])


# --------------------------------------------------------------------------- extends


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


def _target(item: Y) -> str:
    if item.is_map:
        t = item.get("target")
        return str(t.value) if t is not None else ""
    parts = str(item.value).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


REPLACE = {"command", "entrypoint", "image", "healthcheck"}
AS_MAP = {"environment", "labels", "sysctls", "depends_on"}


def merge(base: Y, over: Y) -> Y:
    """A service that ``extends`` ``base``: mappings merge, ``volumes`` by target, other
    sequences add up (duplicates dropped), scalars and commands are replaced."""
    out = dict(base.value)
    keys = dict(base.keys)
    for k, v in over.value.items():
        old = out.get(k)
        keys[k] = over.at(k)
        if old is None or k in REPLACE:
            out[k] = v
        elif k in AS_MAP:
            a, b = _as_map(old) if k != "depends_on" else _deps_map(old), _as_map(v) if k != "depends_on" else _deps_map(v)
            out[k] = Y({**a.value, **b.value}, v.pos, {**a.keys, **b.keys}) if a.is_map and b.is_map else v
        elif old.is_map and v.is_map:
            out[k] = merge(old, v)
        elif old.is_seq and v.is_seq:
            if k == "volumes":
                targets = {_target(i) for i in v.value}
                out[k] = Y([i for i in old.value if _target(i) not in targets] + list(v.value), v.pos)
            else:
                seen = {repr(i.plain()) for i in v.value}
                out[k] = Y([i for i in old.value if repr(i.plain()) not in seen] + list(v.value), v.pos)
        else:
            out[k] = v
    return Y(out, over.pos, keys)


def _deps_map(y: Y) -> Y:
    if y.is_seq:
        return Y({str(i.value): Y({"condition": Y("service_started", i.pos)}, i.pos) for i in y.value},
                 y.pos, {str(i.value): i.pos for i in y.value})
    return y


class Reader:
    """Loads a Compose file and the files its services extend."""

    def __init__(self, path: str, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.dir = Path(path).resolve().parent if path != "-" and not path.startswith("/dev/fd/") else Path.cwd()
        self.notes: list[Note] = []
        base_env = dotenv(self.dir / ".env")
        base_env.update(os.environ if env is None else env)
        self.interp = Interpolator(base_env, self.notes)
        self.files: dict[str, Y] = {}

    def load(self, path: str) -> Y:
        key = path if path in ("-",) or path.startswith("/dev/fd/") else str(Path(path).resolve())
        if key not in self.files:
            self.files[key] = self.interp(load_one(read_text(path), path))
        return self.files[key]

    def service(self, doc: Y, name: str, file: str, stack: tuple[tuple[str, str], ...] = ()) -> Y:
        """Service ``name`` of ``doc`` with its ``extends`` chain resolved."""
        services = doc.get("services")
        svc = services.get(name) if services is not None else None
        if svc is None or not svc.is_map:
            raise _err(doc.pos, f"services.{name}", "no such service (named by extends)")
        ext = svc.get("extends")
        if ext is None:
            return svc
        if (file, name) in stack:
            raise _err(svc.at("extends"), f"services.{name}.extends", "extends cycle: " +
                       " -> ".join(n for _, n in (*stack, (file, name))))
        if isinstance(ext.value, str):
            base_name, base_file = ext.value, file
        elif ext.is_map and ext.get("service") is not None:
            base_name = str(ext.get("service").value)  # type: ignore[union-attr]
            f = ext.get("file")
            base_file = file if f is None else str((Path(file).resolve().parent / str(f.value)))
        else:
            raise _err(ext.pos, f"services.{name}.extends", "expected a service name or {service, file}")
        base_doc = doc if base_file == file else self.load(base_file)
        base = self.service(base_doc, base_name, base_file, (*stack, (file, name)))
        own = Y({k: v for k, v in svc.value.items() if k != "extends"}, svc.pos, svc.keys)
        return merge(base, own)


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

    def __init__(self, reader: Reader, volumes: dict[str, Volume], notes: list[Note]) -> None:
        self.reader = reader
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
        kw["env"] = _pairs(g("environment"), self.notes, f"{path}.environment", self.reader.interp.env)
        kw["labels"] = tuple((k, v) for k, v in _pairs(g("labels"), self.notes, f"{path}.labels")
                             if not k.startswith("io.labctl."))
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
        if nm is not None and nm.value != "none":
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
        return Service(name=name, keys=dict(y.keys), pos=y.pos, **kw)

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
        host = str((self.reader.dir / host).resolve()) if not os.path.isabs(host) else os.path.normpath(host)
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


def read_compose(path: str, *, profiles: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Stack:
    """The services a ``docker compose up`` of ``path`` would start (with these profiles),
    as a Stack. ScenarioErrors (exit 2) when the file cannot be read or has no services."""
    reader = Reader(path, env)
    doc = reader.load(path)
    services = doc.get("services")
    if services is None or not services.is_map or not services.value:
        raise _err(doc.pos, "services", "no services: nothing to import")
    notes = reader.notes
    volumes = _volumes(doc, notes)
    sr = ServiceReader(reader, volumes, notes)
    out = []
    for name in services.value:
        svc = reader.service(doc, name, path)
        if not svc.is_map:
            raise _err(svc.pos, f"services.{name}", "expected a mapping")
        prof = svc.get("profiles")
        wanted = {str(p.value) for p in prof.value} if prof is not None and prof.is_seq else set()
        if wanted and not wanted & set(profiles):
            notes.append(Note(svc.at("profiles"), f"services.{name}.profiles",
                              f"in profile(s) {', '.join(sorted(wanted))}, not started by default: left out "
                              "(--profile to include it)"))
            continue
        out.append(sr.read(name, svc))
    if not out:
        raise _err(services.pos, "services", "every service is in a profile: nothing to import (use --profile)")
    name_y = doc.get("name")
    project = str(name_y.value) if name_y is not None and name_y.value else (
        reader.dir.name if path not in ("-",) and not path.startswith("/dev/fd/") else "stack")
    if project in ("", "/"):
        project = "stack"
    return Stack("compose", project, path, tuple(out), tuple(volumes.values()), tuple(notes), doc.pos)


__all__ = ["read_compose", "merge", "Interpolator", "dotenv"]
