"""Every check kind against a small fake Observation: each passes and each fails."""

from __future__ import annotations

import json

import pytest

from labctl.checks.evaluate import evaluate, tally
from labctl.errors import LabctlError
from labctl.runtime.logs import ExitStatus, Output
from labctl.scenario.kinds.cleanup import CleanupCheck
from labctl.scenario.kinds.events import EventsCheck
from labctl.scenario.kinds.exit import ExitCheck
from labctl.scenario.kinds.file import FileCheck
from labctl.scenario.kinds.namespace import NamespaceCheck
from labctl.scenario.kinds.output import OutputCheck
from labctl.scenario.kinds.refused import RefusedCheck
from labctl.scenario.kinds.segment import SegmentCheck
from labctl.layout import BUILTINS
from labctl.scenario.model import CheckSpec, Expect


class FakeClock:
    """Time that moves only when the code under test sleeps or waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


class Recorded(Output):
    """An Output that remembers what it was fed, so the fake can attach a check's tally
    after the fact (the runner attaches them before the container starts)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[tuple[str, bytes]] = []
        self.children: list[Output] = []

    def feed(self, stream: str, chunk: bytes) -> None:
        self.chunks.append((stream, chunk))
        for c in self.children:
            c.feed(stream, chunk)
        super().feed(stream, chunk)

    def close(self) -> None:
        for c in self.children:
            c.close()
        super().close()

    def replay_into(self, other: Output) -> None:
        for stream, chunk in self.chunks:
            other.feed(stream, chunk)
        if self.closed:
            other.close()
        self.children.append(other)


def closed_output(*events: dict, stderr: tuple[str, ...] = ()) -> Output:
    out = Recorded()
    out.feed("stdout", "".join(json.dumps(e) + "\n" for e in events).encode())
    if stderr:
        out.feed("stderr", "".join(line + "\n" for line in stderr).encode())
    out.close()
    return out


CONN_STAT_LAYOUT = BUILTINS["conn_stat"]


class FakeObs:
    def __init__(self, **kw) -> None:
        self.outputs: dict[str, Output] = kw.get("outputs", {})
        self.refused: dict[str, str] = kw.get("refused", {})
        self.exits: dict[str, ExitStatus] = kw.get("exits", {})
        self.ns: dict[str, str] = kw.get("ns", {})
        self.segments: dict[str, list[dict]] = kw.get("segments", {})
        self.files: dict[str, dict] = kw.get("files", {})
        self.left: list[str] = kw.get("left", [])
        self.probe_calls: list[tuple[str, list[str]]] = []
        self.tallies: list[tuple[object, object]] = []  # (check body, its tally)

    def output(self, container):
        return self.outputs.get(container)

    def refusal(self, container):
        return self.refused.get(container)

    def wait_exit(self, container, timeout):
        return self.exits.get(container)

    def ipc_namespace(self, container):
        return self.ns.get(container)

    def probe_ipc(self, container, args, timeout=None):
        self.probe_calls.append((container, args))
        return {"event": "probe", "segments": self.segments.get(container, [])}

    def probe_file(self, container, args, timeout=None):
        if container not in self.files:
            raise LabctlError(f"cannot look at the files of {container}: it did not start")
        return {"event": "probe", "stat": self.files[container]}

    def leftovers(self):
        return self.left

    def watcher(self, body):
        """The check's tally, attached to a copy of the recorded output (first use)."""
        for b, t in self.tallies:
            if b is body:
                return t
        child = Output()
        t = tally(body, child)
        self.outputs[body.container].replay_into(child)
        self.tallies.append((body, t))
        return t

    def architecture(self):
        return "x86_64"


def run(body, obs, kind="x", timeout=1.0, consistently=None, real_time=False):
    """Evaluate on a fake clock; checks that block on a live Output need real time
    (a condition variable cannot be woken by a fake clock), with short deadlines."""
    check = CheckSpec(name="c", kind=kind, body=body, timeout=timeout, consistently=consistently)
    if real_time:
        return evaluate(check, obs)
    clock = FakeClock()
    return evaluate(check, obs, clock=clock, sleep=clock.sleep)


READS = [{"event": "read", "count": n, "ip": "127.0.0.1"} for n in (1, 2, 3)]


# ---- exit


def test_exit_code_passes_and_fails():
    obs = FakeObs(outputs={"r": closed_output()}, exits={"r": ExitStatus(0)})
    assert run(ExitCheck("r", codes=(0,)), obs).status == "passed"
    res = run(ExitCheck("r", codes=(10,)), obs)
    assert res.status == "failed"
    assert "exits with 10" in res.expected and "exit 0" in res.observed


def test_exit_signal():
    obs = FakeObs(outputs={"r": closed_output()}, exits={"r": ExitStatus(135)})
    assert run(ExitCheck("r", signal="SIGBUS"), obs).status == "passed"
    res = run(ExitCheck("r", codes=(0,)), obs)
    assert res.status == "failed" and "killed by SIGBUS" in res.observed


def test_exit_still_running_times_out():
    obs = FakeObs(outputs={"r": Recorded()})
    res = run(ExitCheck("r", codes=(0,)), obs, timeout=0.5)
    assert res.status == "failed" and "still running" in res.observed


def test_exit_of_refused_container_fails_with_reason():
    obs = FakeObs(refused={"r": "non-shareable IPC"})
    res = run(ExitCheck("r", codes=(0,)), obs)
    assert res.status == "failed" and "non-shareable IPC" in res.observed


# ---- events


def test_events_rising_and_min():
    obs = FakeObs(outputs={"r": closed_output(*READS)})
    body = EventsCheck("r", "read", where=(("ip", Expect("eq", "127.0.0.1")),), min=3, rising="count")
    assert run(body, obs).status == "passed"


def test_events_not_rising_fails():
    reads = [dict(e, count=1) for e in READS]
    obs = FakeObs(outputs={"r": closed_output(*reads)})
    res = run(EventsCheck("r", "read", min=3, rising="count"), obs)
    assert res.status == "failed" and "not strictly rising" in res.observed


def test_events_too_few_reports_last_error():
    err = {"event": "error", "call": "shmget", "errno": "ENOENT", "message": "No such file or directory"}
    obs = FakeObs(outputs={"r": closed_output(err)})
    res = run(EventsCheck("r", "read", min=1), obs)
    assert res.status == "failed" and "ENOENT" in res.observed


def test_events_where_mismatch_fails():
    obs = FakeObs(outputs={"r": closed_output(*READS)})
    res = run(EventsCheck("r", "read", where=(("ip", Expect("eq", "10.0.0.1")),)), obs)
    assert res.status == "failed" and "0 matching of 3" in res.observed


def test_events_max_waits_for_exit_then_judges():
    running = Recorded()
    running.feed("stdout", b'{"event":"read","count":1}\n')
    res = run(EventsCheck("r", "read", min=0, max=0), FakeObs(outputs={"r": running}), timeout=0.3, real_time=True)
    assert res.status == "failed"  # one read: over the bound
    quiet = Recorded()
    res = run(EventsCheck("r", "read", min=0, max=0), FakeObs(outputs={"r": quiet}), timeout=0.3, real_time=True)
    assert res.status == "failed" and "still running" in res.observed  # an open bound proves nothing yet
    res = run(EventsCheck("r", "read", min=0, max=0), FakeObs(outputs={"r": closed_output()}))
    assert res.status == "passed"


def test_events_max_consistently_holds():
    quiet = Recorded()
    res = run(EventsCheck("r", "read", min=0, max=0), FakeObs(outputs={"r": quiet}), consistently=0.3, real_time=True)
    assert res.status == "passed"


# ---- output


def test_output_matches_and_not():
    obs = FakeObs(outputs={"r": closed_output(stderr=("sysv-reader: shmget: No such file or directory",))})
    assert run(OutputCheck("r", matches="No such file"), obs).status == "passed"
    assert run(OutputCheck("r", matches="No such file", stream="stdout"), obs).status == "failed"
    assert run(OutputCheck("r", not_matches="Segmentation"), obs).status == "passed"
    res = run(OutputCheck("r", not_matches="shmget"), obs)
    assert res.status == "failed" and "shmget" in res.observed


# ---- namespace


def test_namespace_same_and_different():
    obs = FakeObs(ns={"w": "ipc:[1]", "r": "ipc:[1]", "p": "ipc:[2]"})
    assert run(NamespaceCheck("w", "r", True), obs).status == "passed"
    assert run(NamespaceCheck("w", "p", True), obs).status == "failed"
    assert run(NamespaceCheck("w", "p", False), obs).status == "passed"
    assert run(NamespaceCheck("w", "r", False), obs).status == "failed"


def test_namespace_unreadable_fails():
    res = run(NamespaceCheck("w", "r", True), FakeObs(ns={"w": "ipc:[1]"}), timeout=0.2)
    assert res.status == "failed" and "could not be read" in res.observed


# ---- segment

SEG = {"key": 1234, "shmid": 7, "perms": 0o666, "dest": False, "size": 68, "nattch": 1,
       "fields": {"count": 5, "ip": "127.0.0.1"}}


def test_segment_present_with_fields():
    obs = FakeObs(segments={"w": [SEG]})
    body = SegmentCheck("w", key=1234, size=Expect("eq", 68), nattch=Expect("eq", 1), perms=Expect("eq", 0o666),
                        layout=CONN_STAT_LAYOUT, fields=(("count", Expect("gt", 0)), ("ip", Expect("eq", "127.0.0.1"))))
    assert run(body, obs).status == "passed"
    assert "--layout" in obs.probe_calls[0][1] and "count:0:i:4,ip:4:s:64" in obs.probe_calls[0][1]


def test_segment_field_mismatch_fails():
    obs = FakeObs(segments={"w": [SEG]})
    res = run(SegmentCheck("w", key=1234, layout=CONN_STAT_LAYOUT, fields=(("count", Expect("eq", 0)),)), obs, timeout=0.2)
    assert res.status == "failed" and "field count (int32): expected == 0, observed 5" in res.observed


def test_segment_absent_and_present_wrongly():
    assert run(SegmentCheck("w", key=1234, present=False), FakeObs()).status == "passed"
    res = run(SegmentCheck("w", key=1234, present=False), FakeObs(segments={"w": [SEG]}), timeout=0.2)
    assert res.status == "failed" and "present" in res.observed
    res = run(SegmentCheck("w", key=1234), FakeObs(), timeout=0.2)
    assert res.status == "failed" and "no such segment" in res.observed


def test_segment_dest_by_shmid_from():
    attached = closed_output({"event": "attached", "shmid": 7, "key": 1234})
    marked = dict(SEG, key=0, dest=True)
    obs = FakeObs(outputs={"w": attached}, segments={"w": [marked]})
    assert run(SegmentCheck("w", shmid_from="w", dest=True), obs).status == "passed"
    assert run(SegmentCheck("w", shmid_from="w", dest=False), obs, timeout=0.2).status == "failed"


def test_segment_cpid_and_lpid():
    # 0: the creator is in another pid namespace than the probe (the kernel shows it as 0)
    seg = dict(SEG, cpid=0, lpid=42)
    obs = FakeObs(segments={"w": [seg]})
    assert run(SegmentCheck("w", key=1234, cpid=Expect("eq", 0), lpid=Expect("gt", 0)), obs).status == "passed"
    res = run(SegmentCheck("w", key=1234, cpid=Expect("gt", 0)), obs, timeout=0.2)
    assert res.status == "failed" and "mismatched: cpid 0" in res.observed and "cpid > 0" in res.expected
    res = run(SegmentCheck("w", key=1234, lpid=Expect("eq", 7)), obs, timeout=0.2)
    assert res.status == "failed" and "mismatched: lpid 42" in res.observed


# ---- file


def test_file_same_inode_and_fields():
    st = {"exists": True, "dev": 10, "ino": 99, "size": 68, "fields": {"ip": "127.0.0.1"}}
    obs = FakeObs(files={"r": st, "w": dict(st)})
    body = FileCheck("r", "/data/f", same_as="w", size=Expect("eq", 68), layout=CONN_STAT_LAYOUT,
                     fields=(("ip", Expect("eq", "127.0.0.1")),))
    assert run(body, obs).status == "passed"
    obs = FakeObs(files={"r": st, "w": dict(st, ino=100)})
    res = run(body, obs, timeout=0.2)
    assert res.status == "failed" and "different file" in res.observed


def test_file_perms_uid_gid():
    st = {"exists": True, "dev": 10, "ino": 99, "size": 68, "mode": 0o100644, "uid": 0, "gid": 1000}
    obs = FakeObs(files={"r": st})
    body = FileCheck("r", "/data/f", perms=Expect("eq", 0o644), uid=Expect("eq", 0), gid=Expect("eq", 1000))
    assert run(body, obs).status == "passed"
    res = run(FileCheck("r", "/data/f", gid=Expect("eq", 0)), obs, timeout=0.2)
    assert res.status == "failed" and "mismatched: gid 1000" in res.observed and "gid == 0" in res.expected
    res = run(FileCheck("r", "/data/f", uid=Expect("eq", 1000)), obs, timeout=0.2)
    assert res.status == "failed" and "mismatched: uid 0" in res.observed
    res = run(FileCheck("r", "/data/f", perms=Expect("eq", 0o666)), obs, timeout=0.2)
    assert res.status == "failed" and "mismatched: perms 0o644" in res.observed


def test_file_absent():
    obs = FakeObs(files={"r": {"exists": False}})
    assert run(FileCheck("r", "/data/f", exists=False), obs).status == "passed"
    assert run(FileCheck("r", "/data/f"), obs, timeout=0.2).status == "failed"


def test_file_probe_error_is_an_error_not_a_crash():
    res = run(FileCheck("r", "/data/f"), FakeObs(), timeout=0.2)
    assert res.status == "error" and "did not start" in res.message


# ---- refused and cleanup


def test_refused():
    obs = FakeObs(refused={"r": "cannot join IPC of a non-shareable IPC container"})
    assert run(RefusedCheck("r", "non-shareable"), obs).status == "passed"
    assert run(RefusedCheck("r", "no such image"), obs).status == "failed"
    res = run(RefusedCheck("r", "x"), FakeObs(outputs={"r": closed_output()}))
    assert res.status == "failed" and "started" in res.observed


def test_cleanup():
    assert run(CleanupCheck(), FakeObs()).status == "passed"
    res = run(CleanupCheck(), FakeObs(left=["container labctl-x-reader"]))
    assert res.status == "failed" and "labctl-x-reader" in res.observed


@pytest.mark.parametrize("consistently", [None, 0.3])
def test_consistently_fails_on_first_violation(consistently):
    obs = FakeObs(segments={"w": [SEG]})
    res = run(SegmentCheck("w", key=1234, present=False), obs, consistently=consistently, timeout=0.3)
    assert res.status == "failed"


def test_labels_for_refuses_reserved_user_labels_and_adds_its_own():
    from labctl.runtime.labels import labels_for

    labels = labels_for("run-1", "s", "writer", {"com.example.team": "ipc"})
    assert labels["com.example.team"] == "ipc"
    assert labels["io.labctl.managed"] == "true" and labels["io.labctl.run-id"] == "run-1"
    assert labels["io.labctl.scenario"] == "s" and labels["io.labctl.role"] == "writer"
    with pytest.raises(LabctlError, match="reserved"):
        labels_for("run-1", "s", "writer", {"io.labctl.managed": "false"})


def test_exit_code_in_the_signal_range_counts_when_listed():
    obs = FakeObs(outputs={"r": closed_output()}, exits={"r": ExitStatus(143)})
    assert run(ExitCheck("r", codes=(143,)), obs).status == "passed"
    assert run(ExitCheck("r", codes=(0,)), obs).status == "failed"


def test_consistently_window_cut_by_the_scenario_timeout_is_an_error():
    clock = FakeClock()
    check = CheckSpec(name="c", kind="segment", body=SegmentCheck("w", key=1234, present=False),
                      timeout=10.0, consistently=20.0)
    res = evaluate(check, FakeObs(), clock=clock, sleep=clock.sleep, hard_deadline=3.0)
    assert res.status == "error" and "leaves 3.0s of the 20s" in res.message


def test_eventually_cut_by_the_scenario_timeout_says_how_long_it_had():
    clock = FakeClock()
    check = CheckSpec(name="c", kind="segment", body=SegmentCheck("w", key=1234), timeout=10.0)
    res = evaluate(check, FakeObs(), clock=clock, sleep=clock.sleep, hard_deadline=2.0)
    assert res.status == "failed" and "within 2s" in res.message


def test_not_started_failure_still_says_what_was_expected():
    res = run(EventsCheck("j", "read"), FakeObs(refused={"j": "No such container"}))
    assert res.status == "failed" and "'read' event(s) from j" in res.expected and "No such container" in res.observed
    res = run(OutputCheck("j", matches="x"), FakeObs())
    assert res.status == "failed" and res.expected


def test_a_check_on_a_chatty_output_rests_between_judgements(monkeypatch):
    """An output fed thousands of times a second wakes its check at most about once per
    REST_MIN (each wake-up costs the reader thread CPU), and the verdict still comes."""
    import threading
    import time

    from labctl.checks import evaluate as ev

    judged = []
    real_judge = ev._judge
    monkeypatch.setattr(ev, "_judge", lambda *a: judged.append(1) or real_judge(*a))
    out, n = Recorded(), 3000

    def chatter():
        for i in range(1, n + 1):
            out.feed("stdout", b'{"event":"read","count":%d}\n' % i)
            if i % 10 == 0:
                time.sleep(0.001)
        out.close()

    feeder = threading.Thread(target=chatter)
    t0 = time.monotonic()
    feeder.start()
    res = run(EventsCheck("r", "read", min=n, rising="count"), FakeObs(outputs={"r": out}), timeout=30, real_time=True)
    feeder.join()
    took = time.monotonic() - t0
    assert res.status == "passed", res.observed
    assert len(judged) <= took / ev.REST_MIN + 5, (len(judged), took)
