"""``file``: a file on the storage a container mounts (size, inode identity, layout fields)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import COUNT, FIELD_VALUES, LAYOUT, PERMS, Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.layout import Layout
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, octal, ref
from labctl.scenario.layout_keys import build_fields, build_layout, engine_abi, judge_fields, probe_layout
from labctl.scenario.model import Expect
from labctl.scenario.spec import Bool, PDict, Str, join


@dataclass(frozen=True)
class FileCheck:
    """A file on the storage ``container`` mounts, at ``path`` (a probe mounts the same
    volumes). ``same_as``: the file at ``path`` seen through ``same_as`` has the same
    device and inode. ``fields`` read by ``layout``. A path under ``/dev/shm/`` (a POSIX
    shared-memory object) is read by a probe in the container's IPC namespace, whose
    /dev/shm it is; other paths by a probe with the container's volumes."""

    container: str
    path: str
    exists: bool = True
    size: Expect | None = None
    same_as: str | None = None
    layout: Layout | None = None
    fields: tuple[tuple[str, Expect], ...] = ()
    perms: Expect | None = None  # mode & 0777 (octal in the file)
    uid: Expect | None = None  # the owner's uid
    gid: Expect | None = None  # the owner's gid

    @property
    def in_devshm(self) -> bool:
        return self.path.startswith(DEVSHM)


DEVSHM = "/dev/shm/"


SPEC = Obj({
    "container": F(Ref(), True),
    "path": F(Str("an absolute path in that container", pattern=r"^/", what="path",
                  hint="expected an absolute path"), True),
    "exists": F(Bool("false: the file must not exist (default true)")),
    "size": F(ExpectT(COUNT, "file size in bytes")),
    "same_as": F(Ref("the same path through this container is the same inode")),
    "layout": F(LAYOUT),
    "fields": F(FIELD_VALUES),
    "perms": F(ExpectT(PERMS, "mode & 0777, e.g. 0644")),
    "uid": F(ExpectT(COUNT, "the owner's uid")),
    "gid": F(ExpectT(COUNT, "the owner's gid (the group of the creator, or of a setgid directory)")),
}, "a file on a container's storage", depends={"fields": "layout"})


def build(b: Builder, d: PDict, path: str) -> tuple[FileCheck, str]:
    c = ref(b, d, "container", path)
    same_as = ref(b, d, "same_as", path) if "same_as" in d else None
    lay = build_layout(b, d, path)
    p = get(d, "path", "")
    if p.startswith(DEVSHM) and c in b.container_names:
        owner = b.ipc_owner(c)
        if owner is not None and owner[1] not in ("shareable", "host"):
            b.ctx.at(d.node.value["path"], join(path, "path"),
                     f"{p} is in the /dev/shm of {c}'s IPC namespace (ipc '{owner[1]}'): a probe reads it by "
                     "joining that namespace, which must be shareable or host")
    return FileCheck(c, p, get(d, "exists", True), get(d, "size"), same_as, lay,
                     build_fields(b, d, path, lay), get(d, "perms"), get(d, "uid"), get(d, "gid")), f"file {c} {p}"


def _stat(body: FileCheck, obs: Observation, container: str, args: list[str], look: Look) -> dict:
    args = ["probe", "--stat", body.path, *args]
    probe = obs.probe_ipc if body.in_devshm else obs.probe_file
    found = probe(container, args, timeout=look.left())
    return found.get("stat") or {}


def judge(body: FileCheck, obs: Observation, look: Look) -> Verdict:
    abi = engine_abi(obs.architecture()) if body.layout is not None else ""
    st = _stat(body, obs, body.container, probe_layout(body.layout, body.fields, abi), look)
    where = f"{body.path} in the IPC namespace of {body.container}" if body.in_devshm else \
        f"{body.path} as {body.container} mounts it"
    if not body.exists:
        return Verdict(not st.get("exists"), f"no file {where}", "present" if st.get("exists") else "absent")
    wants = []
    if body.size is not None:
        wants.append(f"size {body.size.describe()}")
    if body.perms is not None:
        wants.append(f"perms {octal(body.perms)}")
    if body.uid is not None:
        wants.append(f"uid {body.uid.describe()}")
    if body.gid is not None:
        wants.append(f"gid {body.gid.describe()}")
    if body.same_as:
        wants.append(f"same inode as in {body.same_as}")
    wants += [f"{n} {e.describe()}" for n, e in body.fields]
    if body.layout is not None and not body.fields:
        wants.append(f"room for {body.layout.source}")
    expected = f"a file {where}" + (f": {', '.join(wants)}" if wants else "")
    if not st.get("exists"):
        return Verdict(False, expected, "no such file")
    bad = []
    if body.size is not None and not body.size.holds(st.get("size")):
        bad.append(f"size {st.get('size')}")
    mode = st.get("mode")
    perms = mode & 0o777 if isinstance(mode, int) else None
    if body.perms is not None and not body.perms.holds(perms):
        bad.append(f"perms {oct(perms) if perms is not None else None}")
    if body.uid is not None and not body.uid.holds(st.get("uid")):
        bad.append(f"uid {st.get('uid')}")
    if body.gid is not None and not body.gid.holds(st.get("gid")):
        bad.append(f"gid {st.get('gid')}")
    observed = f"dev {st.get('dev')} inode {st.get('ino')} size {st.get('size')}"
    if body.perms is not None or body.uid is not None or body.gid is not None:
        observed += f" perms {oct(perms) if perms is not None else None} uid {st.get('uid')} gid {st.get('gid')}"
    if body.same_as:
        other = _stat(body, obs, body.same_as, [], look)
        observed += f"; in {body.same_as}: " + (f"dev {other.get('dev')} inode {other.get('ino')}" if other.get("exists") else "absent")
        if (other.get("dev"), other.get("ino")) != (st.get("dev"), st.get("ino")) or not other.get("exists"):
            bad.append("different file")
    field_bad, shown = judge_fields(body.layout, body.fields, abi, st.get("fields"), st.get("size"), "file")
    bad += field_bad
    observed += shown
    if bad:
        observed += "; mismatched: " + "; ".join(bad)
    return Verdict(not bad, expected, observed)


def probed(body: FileCheck) -> tuple[str, ...]:
    """The containers whose IPC namespace a /dev/shm path is read in (its owner gets a
    probe holder from its start, as for ``segment``; ``same_as`` too); none for a volume's file."""
    if not body.in_devshm:
        return ()
    return tuple(c for c in (body.container, body.same_as) if c)


KIND = CheckKind("file", FileCheck, SPEC, build, judge, probes=probed)
