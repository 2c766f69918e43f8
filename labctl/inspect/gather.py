"""Which containers to look at, and how they group into IPC namespaces (engine data only).

``select`` asks the engine (one listing, inspects in parallel); ``to_member`` reads one
inspect document; ``group`` puts members into namespaces: by the namespace identity
(``ipc:[N]`` from the host's /proc) where it is readable, else by following
``container:X`` to the donor, with a joiner that started before its donor's latest start
counted in the donor's *previous* namespace (a restarted donor gets a new one; its
joiners keep the old). Nothing here starts anything.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Protocol, Sequence

from labctl.errors import UsageError
from labctl.inspect.findings import COMPOSE_PROJECT, Member, Namespace
from labctl.runtime.labels import SCENARIO

INSPECT_SCENARIO = "inspect"  # io.labctl.scenario of inspect's own probes: never inspected


class Survey(Protocol):
    """What ``select`` needs from an engine (``labctl.runtime.Engine``)."""

    name: str

    def survey(self, filters: dict[str, list[str]], *, all: bool = False) -> list[dict]: ...

    def inspect_container(self, ref: str) -> dict | None: ...


def parse_labels(pairs: Sequence[str]) -> list[str]:
    """``K=V`` (or ``K``: the label is present) filters; UsageError for an empty key."""
    out = []
    for p in pairs:
        key = p.split("=", 1)[0].strip()
        if not key:
            raise UsageError(f"--label {p!r}: expected KEY=VALUE or KEY")
        out.append(p.strip())
    return out


def select(engine: Survey, names: Sequence[str], project: str | None, labels: Sequence[str],
           all: bool = False) -> list[dict]:
    """The inspect documents of the containers to look at: those named (id, id prefix or
    name; an unknown one is a UsageError), else those matching ``--project`` (the Compose
    project label, or on Podman a pod of that name) and ``--label`` filters; with none
    of these, every container. Only running ones unless ``all``. inspect's own probes
    are left out."""
    if names:
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
            docs = list(pool.map(engine.inspect_container, names))
        missing = [n for n, d in zip(names, docs) if d is None]
        if missing:
            raise UsageError(f"no such container: {', '.join(missing)}")
        found = [d for d in docs if d is not None and (all or _running(d))]
        if project or labels:
            found = [d for d in found if _matches(d, project, labels)]
    else:
        filters = {"label": list(labels)} if labels else {}
        if project:
            found = engine.survey({**filters, "label": [*filters.get("label", []), f"{COMPOSE_PROJECT}={project}"]},
                                  all=all)
            if not found and engine.name == "podman":
                found = engine.survey({**filters, "pod": [project]}, all=all)
        else:
            found = engine.survey(filters, all=all)
    seen: set[str] = set()
    out = []
    for d in found:
        if d["Id"] in seen or _labels(d).get(SCENARIO) == INSPECT_SCENARIO:
            continue
        seen.add(d["Id"])
        out.append(d)
    return out


def _labels(doc: dict) -> dict[str, str]:
    return dict((doc.get("Config") or {}).get("Labels") or {})


def _running(doc: dict) -> bool:
    return bool((doc.get("State") or {}).get("Running"))


def _matches(doc: dict, project: str | None, labels: Sequence[str]) -> bool:
    own = _labels(doc)
    if project and own.get(COMPOSE_PROJECT) != project and doc.get("Pod") != project:
        return False
    for f in labels:
        k, eq, v = f.partition("=")
        if k not in own or (eq and own[k] != v):
            return False
    return True


def to_member(doc: dict, selected: bool = True) -> Member:
    """A ``Member`` from one ``docker inspect`` document (Docker's or Podman's)."""
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    labels = _labels(doc)
    status = str(state.get("Status") or ("running" if state.get("Running") else "exited"))
    pod = doc.get("Pod")  # the pod's name: Podman's engine adds it to its inspect documents
    return Member(
        id=str(doc["Id"]), name=str(doc.get("Name") or doc["Id"][:12]).lstrip("/"), state=status,
        pid=int(state.get("Pid") or 0) or None, ipc_mode=str(host.get("IpcMode") or "private"),
        started_at=str(state.get("StartedAt") or ""), restart_count=int(doc.get("RestartCount") or 0),
        shm_size=int(host["ShmSize"]) if host.get("ShmSize") else None,
        mem_limit=int(host["Memory"]) if host.get("Memory") else None,
        labels=labels, pod=str(pod) if pod else None, infra=bool(doc.get("IsInfra")),
        selected=selected,
    )


def resolve(members: Iterable[Member], ref: str) -> Member | None:
    """The member that ``ref`` (an id, id prefix of 12+ characters or name) names."""
    ref = ref.lstrip("/")
    for m in members:
        if m.id == ref or m.name == ref or (len(ref) >= 12 and m.id.startswith(ref)):
            return m
    return None


def add_donors(engine: Survey, members: list[Member]) -> list[Member]:
    """``members`` plus the donors (recursively) they joined that were not selected, so a
    joiner's namespace is shown with who holds it."""
    out = list(members)
    pending = [m.donor_ref for m in out if m.donor_ref]
    while pending:
        ref = pending.pop()
        if ref is None or resolve(out, ref) is not None:
            continue
        doc = engine.inspect_container(ref)
        if doc is None:
            continue
        donor = to_member(doc, selected=False)
        out.append(donor)
        if donor.donor_ref:
            pending.append(donor.donor_ref)
    return out


def _later(a: str, b: str) -> bool:
    """RFC 3339 ``a`` after ``b`` (the engine's timestamps compare as text once cut to
    whole seconds and fractions padded)."""
    def norm(t: str) -> str:
        head, _, frac = t.rstrip("Z").partition(".")
        frac = frac.split("+")[0].split("-")[0]
        return head + "." + frac.ljust(9, "0")
    return bool(a and b) and norm(a) > norm(b)


def _chain_root(m: Member, members: list[Member]) -> Member | None:
    """The donor at the end of ``m``'s ``container:X`` chain (``m`` itself when it joined
    nobody); None when a donor in the chain is unknown to the engine."""
    seen = {m.id}
    while m.donor_ref is not None:
        donor = resolve(members, m.donor_ref)
        if donor is None or donor.id in seen:
            return None
        seen.add(donor.id)
        m = donor
    return m


def _kind(root: Member) -> str:
    if root.infra:
        return "pod"
    return root.ipc_mode if root.ipc_mode in ("shareable", "none") else "private"


def namespace_of(m: Member, members: list[Member]) -> tuple[str, str, Member | None]:
    """(key, kind, donor) of the namespace ``m`` is in; see ``group``."""
    if m.ipc_mode == "host":
        return "host", "host", None
    root = _chain_root(m, members)
    if root is None:
        return (m.ipcns or f"joined:{m.donor_ref}"), "private", None
    if root is not m and m.running and root.running:
        if m.ipcns and root.ipcns:
            stale = m.ipcns != root.ipcns
        else:  # no identity to compare: a donor started after its joiner restarted since
            stale = _later(root.started_at, m.started_at)
        if stale:
            return (m.ipcns or f"stale-of:{root.name}"), "stale", root
    return (root.ipcns or m.ipcns or f"ns-of:{root.name}"), _kind(root), root


def group(members: list[Member]) -> list[Namespace]:
    """Members grouped into IPC namespaces, by identity (``ipc:[N]``) where the host's
    /proc gives it, else by the ``container:X`` chain. A joiner whose namespace is not
    its running donor's current one (the donor restarted after it joined) is in a
    ``stale`` namespace, with that donor named. Order: by first member's name, host last."""
    groups: dict[str, Namespace] = {}
    for m in sorted(members, key=lambda x: x.name):
        key, kind, donor = namespace_of(m, members)
        ns = groups.get(key)
        if ns is None:
            ns = groups[key] = Namespace(key=key, kind=kind, members=[], donor=donor,
                                         ident=key if key.startswith("ipc:") else None)
        ns.members.append(m)
    out = sorted(groups.values(), key=lambda g: (g.kind == "host", g.members[0].name))
    for ns in out:
        if ns.donor is not None and ns.kind != "stale":
            ns.shm_size = ns.donor.shm_size
    return out
