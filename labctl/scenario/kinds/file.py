"""``file``: a file on the storage a container mounts (size, inode identity, layout fields)."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.common import COUNT, FIELDS as FIELD_EXPECTS, LAYOUT, Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, fields, fields_verdict, layout, ref
from labctl.scenario.model import Expect, Field, layout_arg
from labctl.scenario.spec import Bool, PDict, Str


@dataclass(frozen=True)
class FileCheck:
    """A file on the storage ``container`` mounts, at ``path`` (a probe mounts the same
    volumes). ``same_as``: the file at ``path`` seen through ``same_as`` has the same
    device and inode. ``fields`` read by ``layout``."""

    container: str
    path: str
    exists: bool = True
    size: Expect | None = None
    same_as: str | None = None
    layout: tuple[Field, ...] = ()
    fields: tuple[tuple[str, Expect], ...] = ()


FIELDS = Obj({
    "container": F(Ref(), True),
    "path": F(Str("an absolute path in that container", pattern=r"^/", what="path",
                  hint="expected an absolute path"), True),
    "exists": F(Bool("false: the file must not exist (default true)")),
    "size": F(ExpectT(COUNT, "file size in bytes")),
    "same_as": F(Ref("the same path through this container is the same inode")),
    "layout": F(LAYOUT),
    "fields": F(FIELD_EXPECTS),
}, "a file on a container's storage", depends={"fields": "layout"})


def build(b: Builder, d: PDict, path: str) -> tuple[FileCheck, str]:
    c = ref(b, d, "container", path)
    same_as = ref(b, d, "same_as", path) if "same_as" in d else None
    lay = layout(b, d, path)
    p = get(d, "path", "")
    return FileCheck(c, p, get(d, "exists", True), get(d, "size"), same_as, lay,
                     fields(b, d, path, lay)), f"file {c} {p}"


def _stat_args(body: FileCheck) -> list[str]:
    args = ["probe", "--stat", body.path]
    if body.layout:
        args += ["--layout", layout_arg(body.layout)]
    return args


def judge(body: FileCheck, obs: Observation, look: Look) -> Verdict:
    st = obs.probe_file(body.container, _stat_args(body), timeout=look.left()).get("stat") or {}
    where = f"{body.path} as {body.container} mounts it"
    if not body.exists:
        return Verdict(not st.get("exists"), f"no file {where}", "present" if st.get("exists") else "absent")
    wants = []
    if body.size is not None:
        wants.append(f"size {body.size.describe()}")
    if body.same_as:
        wants.append(f"same inode as in {body.same_as}")
    wants += [f"{n} {e.describe()}" for n, e in body.fields]
    expected = f"a file {where}" + (f": {', '.join(wants)}" if wants else "")
    if not st.get("exists"):
        return Verdict(False, expected, "no such file")
    bad = []
    if body.size is not None and not body.size.holds(st.get("size")):
        bad.append(f"size {st.get('size')}")
    observed = f"dev {st.get('dev')} inode {st.get('ino')} size {st.get('size')}"
    if body.same_as:
        other = obs.probe_file(body.same_as, ["probe", "--stat", body.path], timeout=look.left()).get("stat") or {}
        observed += f"; in {body.same_as}: " + (f"dev {other.get('dev')} inode {other.get('ino')}" if other.get("exists") else "absent")
        if (other.get("dev"), other.get("ino")) != (st.get("dev"), st.get("ino")) or not other.get("exists"):
            bad.append("different file")
    bad += fields_verdict(body.fields, st.get("fields") or {})
    if st.get("fields"):
        observed += f", fields {st['fields']}"
    if bad:
        observed += "; mismatched: " + "; ".join(bad)
    return Verdict(not bad, expected, observed)


KIND = CheckKind("file", FileCheck, FIELDS, build, judge)
