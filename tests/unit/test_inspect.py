"""labctl inspect without an engine: grouping by IPC namespace, how each namespace is
entered, the pitfall warnings (each with a case where it stays silent), the JSON shape,
the host /proc and cgroup reads, and one whole look against a fake engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.errors import ContainerStartError, UsageError
from labctl.inspect import Inspector, gather, pitfalls, probe
from labctl.inspect import show as render
from labctl.inspect.findings import Member, Memory, Namespace, human_bytes
from labctl.runtime.labels import MANAGED, ROLE, RUN_ID, SCENARIO
from labctl.runtime import hostproc


def doc(name: str, ipc: str = "private", *, pid: int = 100, started: str = "2026-01-01T10:00:00.5Z",
        running: bool = True, shm: int = 64 << 20, mem: int = 0, labels: dict | None = None, **extra) -> dict:
    """A ``docker inspect`` document as the engine gives it."""
    return {"Id": f"{name}-id".ljust(64, "0"), "Name": f"/{name}", "RestartCount": 0,
            "State": {"Status": "running" if running else "exited", "Running": running, "Pid": pid if running else 0,
                      "StartedAt": started},
            "HostConfig": {"IpcMode": ipc, "ShmSize": shm, "Memory": mem}, "Config": {"Labels": labels or {}}, **extra}


def member(name: str, ipc: str = "private", ipcns: str | None = None, **kw) -> Member:
    m = gather.to_member(doc(name, ipc, **kw))
    m.ipcns = ipcns
    return m


def cid(name: str) -> str:
    return f"{name}-id".ljust(64, "0")


# ==== grouping ====


def test_donor_and_joiner_share_one_namespace_by_identity_a_private_one_is_apart() -> None:
    ms = [member("writer", "shareable", "ipc:[1]"), member("reader", f"container:{cid('writer')}", "ipc:[1]"),
          member("solo", "private", "ipc:[2]")]
    groups = gather.group(ms)
    assert [(g.key, g.kind, sorted(m.name for m in g.members)) for g in groups] == [
        ("ipc:[1]", "shareable", ["reader", "writer"]), ("ipc:[2]", "private", ["solo"])]
    assert groups[0].donor.name == "writer" and groups[0].shm_size == 64 << 20


def test_without_identity_the_container_chain_groups_and_a_donor_started_later_splits() -> None:
    early, late = "2026-01-01T10:00:00.1Z", "2026-01-01T10:05:00Z"
    ms = [member("writer", "shareable", started=early), member("reader", "container:writer", started=late)]
    [g] = gather.group(ms)
    assert g.kind == "shareable" and {m.name for m in g.members} == {"writer", "reader"}
    ms = [member("writer", "shareable", started=late), member("reader", "container:writer", started=early)]
    groups = {g.kind: g for g in gather.group(ms)}
    assert [m.name for m in groups["stale"].members] == ["reader"] and groups["stale"].donor.name == "writer"


def test_a_joiner_in_another_namespace_than_its_running_donor_is_stale() -> None:
    ms = [member("writer", "shareable", "ipc:[9]"), member("reader", "container:writer", "ipc:[1]")]
    stale = next(g for g in gather.group(ms) if g.kind == "stale")
    assert stale.key == "ipc:[1]" and stale.donor.name == "writer"


def test_host_ipc_is_one_namespace_and_an_unknown_donor_does_not_crash() -> None:
    groups = gather.group([member("a", "host"), member("b", "host"), member("c", "container:gone")])
    assert sorted((g.kind, len(g.members)) for g in groups) == [("host", 2), ("private", 1)]


def test_podman_pod_members_group_under_the_infra_container() -> None:
    infra = gather.to_member(doc("pod-infra", "shareable", Pod="mypod", IsInfra=True))
    w = gather.to_member(doc("mypod-writer", f"container:{cid('pod-infra')}", Pod="mypod"))
    [g] = gather.group([infra, w])
    assert g.kind == "pod" and g.donor is infra and w.pod == "mypod"


class FakeSurvey:
    name = "docker"

    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs
        self.filters: list[dict] = []

    def survey(self, filters: dict, *, all: bool = False) -> list[dict]:
        self.filters.append(filters)
        return [d for d in self.docs if all or d["State"]["Running"]]

    def inspect_container(self, ref: str) -> dict | None:
        return next((d for d in self.docs if ref in (d["Id"], d["Name"].lstrip("/"))), None)


def test_select_filters_by_project_and_label_skips_inspects_own_probes_and_names_unknown_containers() -> None:
    probe_doc = doc("labctl-inspect-1", labels={SCENARIO: "inspect"})
    eng = FakeSurvey([doc("a", labels={"com.docker.compose.project": "p"}), probe_doc,
                      doc("b", running=False)])
    names = [d["Name"] for d in gather.select(eng, [], "p", ["team=ipc"])]
    assert names == ["/a"]
    assert eng.filters[-1] == {"label": ["team=ipc", "com.docker.compose.project=p"]}
    assert [d["Name"] for d in gather.select(eng, [], None, [], all=True)] == ["/a", "/b"]
    with pytest.raises(UsageError, match="no such container: nope"):
        gather.select(eng, ["a", "nope"], None, [])
    with pytest.raises(UsageError):
        gather.parse_labels(["=x"])


# ==== entering a namespace ====


def ns_of(*ms: Member, kind: str = "shareable") -> Namespace:
    return Namespace(key="k", kind=kind, members=list(ms), donor=ms[0])


def test_plan_joins_a_shareable_donor_and_sees_pids_in_its_pid_namespace() -> None:
    w, r = member("writer", "shareable"), member("reader", "container:writer")
    how, why = probe.plan(ns_of(w, r), privileged=False)
    assert why is None and how["ipc_mode"] == f"container:{w.id}" and how["pid_mode"] == f"container:{w.id}"


def test_plan_skips_a_private_namespace_with_reason_and_flag_unless_privileged() -> None:
    solo = member("solo", "private")
    how, why = probe.plan(ns_of(solo, kind="private"), privileged=False)
    assert how is None and "private" in why and "--allow-privileged" in why
    how, why = probe.plan(ns_of(solo, kind="private"), privileged=True)
    assert how["ns_pid"] == solo.pid and how["pid_mode"] == "host" and "setns" in how["via"]
    spec = probe.spec_for(how, "img", "r" * 32, 3)
    assert spec.cap_add == probe.PROBE_CAPS + probe.PRIVILEGED_CAPS and spec.command[-2:] == ["--ns-pid", "100"]
    assert not spec.privileged and spec.network_mode == "none"


def test_plan_enters_a_pod_from_inside_and_skips_a_namespace_without_process() -> None:
    infra = gather.to_member(doc("infra", "shareable", Pod="p", IsInfra=True))
    w = gather.to_member(doc("w", f"container:{cid('infra')}", Pod="p"))
    how, _ = probe.plan(Namespace("k", "pod", [infra, w], donor=infra), privileged=False)
    assert how["pod"] == "p" and how["pid_mode"] == f"container:{w.id}"  # the workload's pids, not pause's
    how, why = probe.plan(ns_of(member("gone", "shareable", running=False)), privileged=True)
    assert how is None and "no process" in why


def test_the_probe_spec_is_labelled_read_only_and_has_no_network() -> None:
    w = member("writer", "shareable")
    how, _ = probe.plan(ns_of(w), privileged=False)
    spec = probe.spec_for(how, "labctl/shmlab:x", "abcd" * 8, 0)
    assert spec.labels[MANAGED] == "true" and spec.labels[RUN_ID] == "abcd" * 8
    assert spec.labels[SCENARIO] == "inspect" and spec.labels[ROLE] == "probe-0"
    assert (spec.network_mode, spec.read_only, spec.cap_drop) == ("none", True, ["ALL"])
    assert spec.command[0] == "probe" and "--statfs" in spec.command


# ==== pitfalls: each fires, and stays silent where it should ====


def seg(**kw) -> dict:
    return {"key": 0, "shmid": 7, "size": 4096, "nattch": 0, "dest": False, "cpid": 0, "cpid_alive": None, **kw}


@pytest.mark.parametrize("s, fires", [
    (seg(), True), (seg(cpid=12, cpid_alive=False), True),
    (seg(nattch=1), False), (seg(dest=True), False), (seg(cpid=12, cpid_alive=True), False),
])
def test_orphan_segment(s: dict, fires: bool) -> None:
    ns = ns_of(member("h", "shareable"))
    ns.segments = [s]
    found = pitfalls.orphan_segments(ns)
    assert bool(found) == fires
    if fires:
        assert found[0].scenarios == ("orphan-segment", "sigkill-leaks-private-segments")


@pytest.mark.parametrize("used, fires", [(80, False), (81, True), (0, False)])
def test_devshm_full_above_80_percent(used: int, fires: bool) -> None:
    ns = ns_of(member("h", "shareable"))
    ns.devshm_fs = {"size": 100 << 20, "used": used << 20}
    assert bool(pitfalls.devshm_full(ns)) == fires


def test_donor_restarted_only_for_a_stale_namespace() -> None:
    w, r = member("w", "shareable"), member("r", "container:w")
    assert pitfalls.donor_restarted(ns_of(w, r)) == []
    [warning] = pitfalls.donor_restarted(Namespace("k", "stale", [r], donor=w))
    assert warning.scenarios == ("donor-restart-splits-sharing",) and "r joined w" in warning.message


@pytest.mark.parametrize("usage, shmem, limit, fires", [
    (90, 80, 100, True), (70, 60, 100, False), (90, 10, 100, False), (90, 80, None, False), (90, None, 100, False),
])
def test_shm_near_memory_limit(usage: int, shmem: int | None, limit: int | None, fires: bool) -> None:
    m = member("filler", "container:h")
    m.memory = Memory(usage << 20, limit << 20 if limit else None, shmem << 20 if shmem is not None else None, "cgroup")
    found = pitfalls.shm_near_memory_limit(ns_of(m))
    assert bool(found) == fires
    if fires:
        assert found[0].container == "filler" and found[0].scenarios == ("shm-oom-killed-writer",)


# ==== host reads ====


def test_memory_cgroup_v1_and_v2_and_unreadable(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    (proc / "5").mkdir(parents=True)
    (proc / "5" / "cgroup").write_text("9:pids:/docker/x\n4:memory:/docker/abc\n")
    d = root / "memory" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "memory.usage_in_bytes").write_text("2000\n")
    (d / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (d / "memory.stat").write_text("cache 100\nshmem 1500\ntotal_shmem 1500\n")
    assert hostproc.memory_cgroup(5, str(proc), str(root)) == hostproc.MemoryCgroup(2000, None, 1500)
    (proc / "6").mkdir()
    (proc / "6" / "cgroup").write_text("0::/system.slice/docker-def.scope\n")
    d2 = root / "system.slice" / "docker-def.scope"
    d2.mkdir(parents=True)
    (d2 / "memory.current").write_text("300\n")
    (d2 / "memory.max").write_text("1000\n")
    (d2 / "memory.stat").write_text("anon 10\nshmem 200\n")
    assert hostproc.memory_cgroup(6, str(proc), str(root)) == hostproc.MemoryCgroup(300, 1000, 200)
    assert hostproc.memory_cgroup(7, str(proc), str(root)) is None
    assert hostproc.ipc_namespace(7, str(proc)) is None
    assert hostproc.container_of(5, ["zzz", "abc"], {"abc": "web"}, str(proc)) == "web"
    assert hostproc.container_of(5, ["zzz"], {"zzz": "db"}, str(proc)) is None
    assert hostproc.container_of(6, ["def"], {"def": "db"}, str(proc)) == "db"


# ==== JSON shape and a whole look on a fake engine ====


def test_key_hex_and_sizes() -> None:
    assert render.key_hex(1234) == "0x000004d2" and render.key_hex(-1) == "0xffffffff"
    assert (human_bytes(68), human_bytes(64 << 20), human_bytes(None)) == ("68 B", "64.0 MiB", "-")


class FakeEngine(FakeSurvey):
    def __init__(self, docs: list[dict], answer: dict | None = None, refuse: bool = False) -> None:
        super().__init__(docs)
        self.answer = answer
        self.refuse = refuse
        self.specs: list = []
        self.removed: list[dict] = []

    def describe(self) -> str:
        return "fake 1.0"

    def memory_stats(self, ref: str) -> dict | None:
        return {"usage": 5 << 20, "limit": 10 << 20, "stats": {}}

    def run_to_exit(self, spec, timeout: float) -> tuple[int | None, str]:  # noqa: ANN001
        self.specs.append(spec)
        if self.refuse:
            raise ContainerStartError(spec.name, "non-shareable IPC")
        return 0, json.dumps(self.answer) + "\n"

    def remove_labelled(self, labels: dict) -> tuple[list[str], list[str]]:
        self.removed.append(labels)
        return [], []


ANSWER = {"event": "probe", "ipcns": "ipc:[77]",
          "segments": [{"key": 1234, "shmid": 3, "perms": 438, "dest": False, "size": 68, "nattch": 2, "uid": 0,
                        "gid": 0, "cpid": 1, "lpid": 0, "cpid_alive": True, "lpid_alive": None}],
          "devshm": [{"name": "b", "size": 2}, {"name": "a", "size": 1}],
          "devshm_fs": {"size": 64 << 20, "used": 4096, "avail": (64 << 20) - 4096},
          "sems": [], "queues": [], "mqueues": []}


def test_a_whole_look_reports_json_and_text_and_removes_its_probes_by_run_id() -> None:
    eng = FakeEngine([doc("writer", "shareable", pid=999999991), doc("reader", "container:writer", pid=999999992),
                      doc("solo", pid=999999993)], ANSWER)
    with Inspector(eng, "img") as insp:
        report = insp.look()
    assert len(eng.specs) == 1 and eng.specs[0].ipc_mode == f"container:{cid('writer')}"
    assert eng.removed == [{RUN_ID: insp.run_id}]
    out = json.loads(render.to_json(report))
    assert set(out) == {"version", "engine", "time", "duration_s", "privileged", "namespaces", "warnings",
                        "not_inspected"}
    shared = next(n for n in out["namespaces"] if n["inspected"])
    assert shared["ipcns"] == "ipc:[77]" and shared["donor"] == "writer"
    assert {"key": 1234, "key_hex": "0x000004d2", "size": 68, "nattch": 2, "perms": "0666",
            "cpid_container": "writer", "lpid_container": None}.items() <= shared["segments"][0].items()
    assert [f["name"] for f in shared["devshm"]["files"]] == ["a", "b"]
    assert shared["containers"][0]["memory"] == {"usage": 5 << 20, "limit": 10 << 20, "shmem": None,
                                                 "source": "stats"}
    assert out["not_inspected"][0]["containers"] == ["solo"]
    assert "--allow-privileged" in out["not_inspected"][0]["reason"]
    text = render.to_text(report)
    assert "0x000004d2" in text and "NOT INSPECTED" in text and "? (other pid ns)" in text


def test_a_refused_probe_is_reported_not_raised() -> None:
    eng = FakeEngine([doc("writer", "shareable", pid=999999991)], refuse=True)
    with Inspector(eng, "img") as insp:
        report = insp.look()
    [ns] = report.namespaces
    assert not ns.probed and "non-shareable IPC" in ns.error
    assert "NOT INSPECTED: the engine refused the probe" in render.to_text(report)


def test_cli_refuses_a_bad_watch_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.cli import main

    monkeypatch.setenv("LABCTL_WATCH", "soon")
    assert main(["inspect"]) == 2
    monkeypatch.setenv("LABCTL_WATCH", "0.1")
    assert main(["inspect"]) == 2
