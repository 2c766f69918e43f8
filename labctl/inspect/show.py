"""``labctl inspect`` output: a readable table per IPC namespace, or one JSON document.

JSON shape (docs/inspect.md documents it): ``{"engine", "time", "duration_s",
"privileged", "namespaces": [...], "warnings": [...], "not_inspected": [...]}``.
"""

from __future__ import annotations

import json

from labctl.inspect.findings import Member, Namespace, Report, Warning, human_bytes

SCHEMA_VERSION = 1


def key_hex(key: int) -> str:
    """A SysV key as ipcs prints it: ``0x000004d2`` (two's complement for negative keys)."""
    return f"0x{key & 0xFFFFFFFF:08x}"


def _member(m: Member) -> dict:
    mem = m.memory
    return {
        "name": m.name, "id": m.id, "state": m.state, "pid": m.pid, "ipc_mode": m.ipc_mode,
        "ipcns": m.ipcns, "project": m.project, "service": m.service, "pod": m.pod, "infra": m.infra,
        "selected": m.selected, "restart_count": m.restart_count, "shm_size": m.shm_size,
        "memory": None if mem is None else {"usage": mem.usage, "limit": mem.limit, "shmem": mem.shmem,
                                            "source": mem.source},
    }


def _segment(s: dict) -> dict:
    key = int(s.get("key") or 0)
    return {"key": key, "key_hex": key_hex(key), "shmid": s.get("shmid"), "size": s.get("size"),
            "nattch": s.get("nattch"), "uid": s.get("uid"), "gid": s.get("gid"),
            "perms": f"{int(s.get('perms') or 0):04o}", "dest": bool(s.get("dest")),
            "cpid": s.get("cpid"), "cpid_container": s.get("cpid_container"), "cpid_alive": s.get("cpid_alive"),
            "lpid": s.get("lpid"), "lpid_container": s.get("lpid_container"), "lpid_alive": s.get("lpid_alive")}


def _warning(w: Warning) -> dict:
    return {"pitfall": w.pitfall, "scenarios": list(w.scenarios), "message": w.message,
            "namespace": w.namespace, "container": w.container}


def _namespace(ns: Namespace) -> dict:
    probed = ns.probed
    fs = ns.devshm_fs
    return {
        "key": ns.key, "ipcns": ns.ident, "kind": ns.kind, "donor": ns.donor.name if ns.donor else None,
        "inspected": probed, "via": ns.via, "skipped": ns.skipped, "error": ns.error,
        "containers": [_member(m) for m in ns.members],
        "segments": [_segment(s) for s in ns.segments] if probed else None,
        "semaphores": ns.sems if probed else None,
        "message_queues": ns.queues if probed else None,
        "mqueues": ns.mqueues if probed else None,
        "devshm": {"size": (fs or {}).get("size", ns.shm_size), "used": (fs or {}).get("used"),
                   "avail": (fs or {}).get("avail"),
                   "files": [{"name": f.get("name"), "size": f.get("size")} for f in ns.devshm_files]
                   if probed and not ns.devshm_note else None,
                   "note": ns.devshm_note},
        "warnings": [_warning(w) for w in ns.warnings],
    }


def to_json(report: Report, *, one_line: bool = False) -> str:
    """The report as one JSON document, keys in a fixed order: pretty-printed, or on one
    line (``one_line``: ``--watch`` prints one document per line)."""
    doc = {
        "version": SCHEMA_VERSION, "engine": report.engine, "time": report.time,
        "duration_s": report.duration_s, "privileged": report.privileged,
        "namespaces": [_namespace(ns) for ns in report.namespaces],
        "warnings": [_warning(w) for w in report.warnings],
        "not_inspected": [{"namespace": ns.key, "containers": [m.name for m in ns.members],
                           "reason": ns.skipped or ns.error} for ns in report.namespaces if not ns.probed],
    }
    return json.dumps(doc, indent=None if one_line else 2) + "\n"


# --------------------------------------------------------------------------- text


def _table(rows: list[list[str]], indent: str = "    ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _pid(seg: dict, key: str) -> str:
    pid = int(seg.get(key) or 0)
    if pid <= 0:
        return "? (other pid ns)"
    who = seg.get(f"{key}_container")
    gone = " gone" if seg.get(f"{key}_alive") is False else ""
    return f"{pid} {who}{gone}" if who else f"{pid}{gone}"


def _mem(m: Member) -> list[str]:
    mem = m.memory
    if mem is None:
        return ["-", "-", "-"]
    return [human_bytes(mem.usage), human_bytes(mem.shmem), human_bytes(mem.limit) if mem.limit else "none"]


def _title(ns: Namespace) -> str:
    ident = ns.ident or "identity unknown"
    what = {"shareable": f"shareable, donor {ns.donor.name if ns.donor else '?'}",
            "pod": f"pod {ns.donor.pod if ns.donor and ns.donor.pod else ''}".rstrip(),
            "private": "private", "none": "ipc none (no /dev/shm)", "host": "the host's",
            "stale": f"left behind by {ns.donor.name if ns.donor else '?'} (restarted)"}.get(ns.kind, ns.kind)
    return f"IPC namespace {ident}  [{what}]"


def _objects(title: str, rows: list[dict], cols: list[str]) -> list[str]:
    if not rows:
        return [f"  {title}: none"]
    return [f"  {title}:"] + _table([[c.upper() for c in cols]] + [[str(r.get(c, "")) for c in cols] for r in rows])


def namespace_text(ns: Namespace) -> list[str]:
    """The lines of one namespace's block."""
    lines = [_title(ns)]
    if ns.probed:
        lines.append(f"  probed via {ns.via}")
    elif ns.skipped:
        lines.append(f"  NOT INSPECTED: {ns.skipped}")
    elif ns.error:
        lines.append(f"  NOT INSPECTED: {ns.error}")
    rows = [["CONTAINER", "STATE", "IPC MODE", "PID", "MEMORY", "SHMEM", "LIMIT"]]
    for m in ns.members:
        mode = m.ipc_mode
        if m.donor_ref:
            donor = next((x.name for x in ns.members if x.id == m.donor_ref or x.name == m.donor_ref), m.donor_ref[:12])
            mode = f"container:{donor}"
        name = m.name + ("" if m.selected else " (donor, not selected)") + (" (pod infra)" if m.infra else "")
        rows.append([name, m.state, mode, str(m.pid or "-"), *_mem(m)])
    lines += _table(rows, "  ")
    if ns.probed:
        if ns.segments:
            lines.append("  SysV shared memory segments:")
            segs = [["KEY", "SHMID", "SIZE", "NATTCH", "OWNER", "PERMS", "CREATOR (cpid)", "LAST (lpid)"]]
            for s in ns.segments:
                key = int(s.get("key") or 0)
                segs.append([key_hex(key) + (" (dest)" if s.get("dest") else ""), str(s.get("shmid")),
                             str(s.get("size")), str(s.get("nattch")), str(s.get("uid")),
                             f"{int(s.get('perms') or 0):04o}", _pid(s, "cpid"), _pid(s, "lpid")])
            lines += _table(segs)
        else:
            lines.append("  SysV shared memory segments: none")
        lines += _objects("semaphore sets", ns.sems, ["key", "semid", "nsems", "uid", "perms"])
        lines += _objects("message queues", ns.queues, ["key", "msqid", "qnum", "cbytes", "uid", "perms"])
        lines += _objects("POSIX message queues", ns.mqueues, ["name", "uid", "perms"])
        fs = ns.devshm_fs or {}
        if ns.devshm_note:
            lines.append(f"  /dev/shm: {ns.devshm_note}")
        elif fs:
            size, used = int(fs.get("size") or 0), int(fs.get("used") or 0)
            pct = f"{100 * used / size:.0f} %" if size else "-"
            lines.append(f"  /dev/shm: {human_bytes(size)}, {human_bytes(used)} used ({pct}), "
                         f"{len(ns.devshm_files)} files")
        else:
            lines.append("  /dev/shm: none (not mounted)")
        lines += _table([["NAME", "SIZE"]] + [[str(f.get("name")), str(f.get("size"))] for f in ns.devshm_files],
                        "    ") if ns.devshm_files else []
    elif ns.shm_size:
        lines.append(f"  /dev/shm: {human_bytes(ns.shm_size)} declared (contents not inspected)")
    for w in ns.warnings:
        lines.append(f"  WARNING {w.pitfall}: {w.message}")
        lines.append(f"    explained by: {', '.join('labctl run scenarios/' + s + '.yaml' for s in w.scenarios)}")
    return lines


def to_text(report: Report) -> str:
    """The report as text: a header, one block per namespace, the skipped ones summed up."""
    n_members = sum(len(ns.members) for ns in report.namespaces)
    lines = [f"labctl inspect: {report.engine}, {n_members} containers in {len(report.namespaces)} IPC namespaces "
             f"({report.duration_s:.2f} s, {report.time})", ""]
    if not report.namespaces:
        lines.append("no container matches")
    for ns in report.namespaces:
        lines += namespace_text(ns) + [""]
    skipped = [ns for ns in report.namespaces if not ns.probed]
    if skipped:
        lines.append(f"not inspected: {len(skipped)} namespace(s): "
                     + "; ".join(f"{', '.join(m.name for m in ns.members)} ({ns.skipped or ns.error})" for ns in skipped))
    if report.warnings:
        lines.append(f"{len(report.warnings)} warning(s)")
    return "\n".join(lines).rstrip("\n") + "\n"
