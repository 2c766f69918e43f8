"""``segment``: a SysV shared-memory segment seen from a container's IPC namespace."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import COUNT, FIELD_VALUES, KEY, LAYOUT, PERMS, Ref
from labctl.scenario.compound import ExpectT, F, Obj
from labctl.layout import Layout
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, octal, probe_ref, ref
from labctl.scenario.layout_keys import build_fields, build_layout, engine_abi, judge_fields, probe_layout
from labctl.scenario.model import Expect
from labctl.scenario.spec import Bool, PDict, join


@dataclass(frozen=True)
class SegmentCheck:
    """A SysV segment seen from the IPC namespace of container ``in_`` (a probe joins it).

    Selected by ``key`` or by ``shmid_from`` (the shmid in that container's ``attached``
    event). ``present: false`` means no such segment. Other fields are expectations."""

    in_: str
    key: int | None = None
    shmid_from: str | None = None
    present: bool = True
    size: Expect | None = None
    nattch: Expect | None = None
    perms: Expect | None = None  # octal in the file (0666), int here
    dest: bool | None = None  # marked for removal (IPC_RMID while attached)
    layout: Layout | None = None  # how the segment's bytes decode (see labctl.layout)
    fields: tuple[tuple[str, Expect], ...] = ()  # field path -> expectation
    # the creator's and the last shmat/shmdt's pid as the probe's pid namespace sees them: 0 for
    # a process of another pid namespace (the kernel shows it so), the pid otherwise
    cpid: Expect | None = None
    lpid: Expect | None = None


SPEC = Obj({
    "in": F(Ref("a container living in a shareable or host IPC namespace"), True),
    "key": F(KEY),
    "shmid_from": F(Ref("the container whose 'attached' event gives the shmid")),
    "present": F(Bool("false: no such segment (default true)")),
    "size": F(ExpectT(COUNT, "segment size in bytes")),
    "nattch": F(ExpectT(COUNT, "number of attaches")),
    "perms": F(ExpectT(PERMS, "mode & 0777")),
    "dest": F(Bool("marked for removal")),
    "cpid": F(ExpectT(COUNT, "the creator's pid as the probe sees it (0: a process of another pid namespace)")),
    "lpid": F(ExpectT(COUNT, "the pid of the last shmat/shmdt as the probe sees it (0: another pid namespace)")),
    "layout": F(LAYOUT),
    "fields": F(FIELD_VALUES),
}, "a SysV segment seen from a container's IPC namespace", one_of=("key", "shmid_from"),
    depends={"fields": "layout"})


def build(b: Builder, d: PDict, path: str) -> tuple[SegmentCheck, str]:
    where = probe_ref(b, d, path)
    sf = ref(b, d, "shmid_from", path) if "shmid_from" in d else None
    lay = build_layout(b, d, path)
    key = get(d, "key")
    body = SegmentCheck(where, key, sf, get(d, "present", True), get(d, "size"), get(d, "nattch"),
                        get(d, "perms"), get(d, "dest"), lay, build_fields(b, d, path, lay),
                        get(d, "cpid"), get(d, "lpid"))
    sel = f"key 0x{key:x}" if isinstance(key, int) and key >= 0 else f"key {key}" if key is not None \
        else f"shmid of {sf}"
    return body, f"segment in {where} {sel}"


def _probe_args(body: SegmentCheck, shmid: int | None, abi: str) -> list[str]:
    args = ["probe", "--segments"]
    if body.key is not None:
        args += ["--key", str(body.key)]
    if shmid is not None:
        args += ["--shmid", str(shmid)]
    return args + probe_layout(body.layout, body.fields, abi)


def _attached_shmid(obs: Observation, container: str) -> int | None:
    out = obs.output(container)
    if out is None:
        return None
    with out.changed:
        e = out.first.get("attached") or {}  # its first attach (the output keeps the first of each event)
    return int(e["shmid"]) if isinstance(e.get("shmid"), int) else None


def _expects(body: SegmentCheck) -> tuple[tuple[str, Expect | None], ...]:
    """The scalar expectations, by the probe's key for the observed value."""
    return (("size", body.size), ("nattch", body.nattch), ("perms", body.perms), ("cpid", body.cpid),
            ("lpid", body.lpid))


def judge(body: SegmentCheck, obs: Observation, look: Look) -> Verdict:
    what = f"key {body.key}" if body.key is not None else f"the segment {body.shmid_from} attached"
    shmid = None
    if body.shmid_from is not None:
        shmid = _attached_shmid(obs, body.shmid_from)
        if shmid is None:
            return Verdict(False, f"segment ({what})", f"{body.shmid_from} reported no 'attached' event with a shmid")
    abi = engine_abi(obs.architecture()) if body.layout is not None else ""
    found = obs.probe_ipc(body.in_, _probe_args(body, shmid, abi), timeout=look.left())
    segs = [s for s in found.get("segments", []) if (body.key is None or s.get("key") == body.key)
            and (shmid is None or s.get("shmid") == shmid)]
    where = f"in the IPC namespace of {body.in_}"
    if not body.present:
        expected = f"no segment with {what} {where}"
        if segs:
            s = segs[0]
            return Verdict(False, expected, f"present: shmid {s.get('shmid')}, size {s.get('size')}, nattch {s.get('nattch')}"
                           + (", marked for removal" if s.get("dest") else ""))
        return Verdict(True, expected, "absent" + (f" ({found['note']})" if found.get("note") else ""))
    wants = []
    for label, exp in _expects(body):
        if exp is not None:
            wants.append(f"{label} {exp.describe() if label != 'perms' else octal(exp)}")
    if body.dest is not None:
        wants.append("marked for removal" if body.dest else "not marked for removal")
    wants += [f"{n} {e.describe()}" for n, e in body.fields]
    if body.layout is not None and not body.fields:
        wants.append(f"room for {body.layout.source}")
    expected = f"a segment with {what} {where}" + (f": {', '.join(wants)}" if wants else "")
    if not segs:
        return Verdict(False, expected, f"no such segment ({len(found.get('segments', []))} segment(s) visible)"
                       + (f"; {found['note']}" if found.get("note") else ""))
    s = segs[0]
    bad = []
    for label, exp in _expects(body):
        if exp is not None and not exp.holds(s.get(label)):
            got = s.get(label)
            bad.append(f"{label} {oct(got) if label == 'perms' and isinstance(got, int) else got}")
    if body.dest is not None and bool(s.get("dest")) != body.dest:
        bad.append("marked for removal" if s.get("dest") else "not marked for removal")
    field_bad, shown = judge_fields(body.layout, body.fields, abi, s.get("fields"), s.get("size"), "segment")
    bad += field_bad
    observed = f"shmid {s.get('shmid')}, size {s.get('size')}, nattch {s.get('nattch')}, perms {oct(s.get('perms') or 0)}"
    if body.cpid is not None or body.lpid is not None:
        observed += f", cpid {s.get('cpid')}, lpid {s.get('lpid')}"
    observed += shown
    if bad:
        observed += "; mismatched: " + "; ".join(bad)
    return Verdict(not bad, expected, observed)


KIND = CheckKind("segment", SegmentCheck, SPEC, build, judge, probes=lambda body: body.in_)
