"""The timeline's check kinds (restarts, objects, memory, exit oom_killed, events since a
step, events per run) against a fake Observation: each passes and each fails."""

from __future__ import annotations

import json

from labctl.checks.evaluate import evaluate, tally
from labctl.runtime.logs import ExitStatus, Output
from labctl.scenario.kinds.events import EventsCheck
from labctl.scenario.kinds.exit import ExitCheck
from labctl.scenario.kinds.memory import MemoryCheck
from labctl.scenario.kinds.objects import ObjectsCheck
from labctl.scenario.kinds.restarts import RestartsCheck
from labctl.scenario.model import CheckSpec, Expect
from tests.unit.test_checks import FakeClock, FakeObs, closed_output


class TimelineObs(FakeObs):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.restarts: dict[str, int] = kw.get("restarts", {})
        self.memory: dict[str, int] = kw.get("memory", {})
        self.objects: dict[str, dict] = kw.get("objects", {})

    def restart_count(self, container):
        return self.restarts.get(container)

    def memory_usage(self, container):
        return self.memory.get(container)

    def probe_ipc(self, container, args):
        self.probe_calls.append((container, args))
        return {"event": "probe", "objects": self.objects.get(container, {})}


def run(body, obs, timeout=1.0, consistently=None, kind="x"):
    clock = FakeClock()
    return evaluate(CheckSpec("c", kind, body, timeout, consistently), obs, clock=clock, sleep=clock.sleep)


RUNNING = {"app": closed_output({"event": "start"})}

# ---------------------------------------------------------------- restarts


def test_restarts_passes_on_the_engine_count():
    obs = TimelineObs(outputs=RUNNING, restarts={"app": 3})
    assert run(RestartsCheck("app", Expect("eq", 3)), obs).status == "passed"
    assert run(RestartsCheck("app", Expect("ge", 2)), obs).status == "passed"


def test_restarts_fails_with_the_count_seen():
    r = run(RestartsCheck("app", Expect("eq", 3)), TimelineObs(outputs=RUNNING, restarts={"app": 1}))
    assert r.status == "failed"
    assert "restart count 1" in r.observed and "== 3" in r.expected


def test_restarts_of_a_container_that_never_ran_fails_at_once():
    r = run(RestartsCheck("app", Expect("eq", 1)), TimelineObs(refused={"app": "no such image"}))
    assert r.status == "failed" and "did not run" in r.observed

# ---------------------------------------------------------------- objects


def test_objects_counts_what_the_probe_reports():
    obs = TimelineObs(objects={"holder": {"shm": 3, "sem": 0, "msg": 0, "devshm_files": 2,
                                          "devshm_bytes": 8 << 20}})
    body = ObjectsCheck("holder", (("shm", Expect("eq", 3)), ("devshm_bytes", Expect("ge", 6 << 20))))
    assert run(body, obs).status == "passed"
    assert obs.probe_calls[0] == ("holder", ["probe", "--objects"])


def test_objects_fails_naming_each_count():
    obs = TimelineObs(objects={"holder": {"shm": 0, "devshm_files": 4}})
    r = run(ObjectsCheck("holder", (("shm", Expect("eq", 3)), ("devshm_files", Expect("le", 1)))), obs)
    assert r.status == "failed"
    assert "shm 0" in r.observed and "devshm_files 4" in r.observed


def test_objects_consistently_fails_when_a_count_changes():
    counts = iter([{"shm": 3}, {"shm": 3}, {"shm": 2}] + [{"shm": 2}] * 100)

    class Changing(TimelineObs):
        def probe_ipc(self, container, args):
            return {"event": "probe", "objects": next(counts)}

    r = run(ObjectsCheck("holder", (("shm", Expect("eq", 3)),)), Changing(), consistently=1.0)
    assert r.status == "failed" and "shm 2" in r.observed

# ---------------------------------------------------------------- memory


def test_memory_usage_below_a_bound_passes():
    obs = TimelineObs(outputs=RUNNING, memory={"app": 1_300_000})
    assert run(MemoryCheck("app", Expect("lt", 16 << 20)), obs).status == "passed"


def test_memory_usage_above_a_bound_fails_in_mib():
    r = run(MemoryCheck("app", Expect("lt", 16 << 20)), TimelineObs(outputs=RUNNING, memory={"app": 68 << 20}))
    assert r.status == "failed"
    assert "68.0 MiB" in r.observed and "16.0 MiB" in r.expected


def test_memory_of_a_stopped_container_fails():
    r = run(MemoryCheck("app", Expect("ge", 0)), TimelineObs(outputs=RUNNING, memory={}))
    assert r.status == "failed" and "does not run" in r.observed

# ---------------------------------------------------------------- exit oom_killed


def test_exit_oom_killed_passes_on_the_engine_flag():
    obs = TimelineObs(outputs=RUNNING, exits={"app": ExitStatus(137, oom_killed=True)})
    assert run(ExitCheck("app", (137,), None, True), obs).status == "passed"
    assert run(ExitCheck("app", (), None, True), obs).status == "passed"


def test_exit_oom_killed_fails_for_a_plain_sigkill():
    obs = TimelineObs(outputs=RUNNING, exits={"app": ExitStatus(137, oom_killed=False)})
    r = run(ExitCheck("app", (137,), None, True), obs)
    assert r.status == "failed" and "OOM-killed" in r.expected


def test_exit_not_oom_killed_fails_when_it_was():
    obs = TimelineObs(outputs=RUNNING, exits={"app": ExitStatus(137, oom_killed=True)})
    r = run(ExitCheck("app", (0,), None, False), obs)
    assert r.status == "failed" and "OOM-killed" in r.observed

# ---------------------------------------------------------------- events: runs and since step


def two_runs() -> Output:
    lines = [{"event": "start"}, {"event": "attached", "created": True}, {"event": "start"},
             {"event": "attached", "created": True}, {"event": "read", "count": 1}]
    return closed_output(*lines)


def collected(out: Output) -> list[dict]:
    seen: list[dict] = []
    out.watch_events(seen.extend)
    return seen


def test_each_event_carries_its_run():
    out = Output()
    seen = collected(out)
    out.feed("stdout", "".join(json.dumps(e) + "\n" for e in [
        {"event": "start"}, {"event": "attached"}, {"event": "start"}, {"event": "attached"},
        {"event": "read"}]).encode())
    assert [e["run"] for e in seen] == [1, 1, 2, 2, 2]
    assert out.run == 2 and out.run_first["attached"] is seen[3]


def test_new_run_numbers_an_image_that_prints_no_start():
    out = Output()
    seen = collected(out)
    out.feed("stdout", b'{"event": "tick"}\n')
    out.new_run()
    out.feed("stdout", b'{"event": "tick"}\n{"event": "tick"}\n')
    assert [e["run"] for e in seen] == [1, 2, 2]


def test_a_start_right_after_new_run_is_one_run_not_two():
    out = Output()
    seen = collected(out)
    out.feed("stdout", b'{"event": "start"}\n')
    out.new_run()
    out.feed("stdout", b'{"event": "start"}\n{"event": "read"}\n')
    assert [e["run"] for e in seen] == [1, 2, 2]


def test_events_where_run_selects_one_run():
    obs = TimelineObs(outputs={"donor": two_runs()})
    ok = EventsCheck("donor", "attached", (("run", Expect("eq", 2)),), min=1, max=1)
    assert run(ok, obs).status == "passed"
    bad = EventsCheck("donor", "attached", (("run", Expect("eq", 3)),))
    assert run(bad, obs).status == "failed"


def test_events_since_step_reads_a_tally_attached_when_the_step_began():
    body = EventsCheck("donor", "attached", since_step=True, min=2)
    out = Output()
    out.feed("stdout", b'{"event": "start"}\n{"event": "attached"}\n')
    obs = TimelineObs(outputs={"donor": out})
    obs.tallies.append((body, tally(body, out)))  # what the timeline does as the step begins
    out.feed("stdout", b'{"event": "attached"}\n')
    out.close()
    r = run(body, obs)
    assert r.status == "failed" and "1 matching of 1" in r.observed and "since this step began" in r.expected


def test_current_run_moves_at_new_run_before_any_line():
    out = Output()
    out.feed("stdout", b'{"event": "start"}\n{"event": "attached"}\n')
    assert out.current_run == 1
    out.new_run()
    assert out.current_run == 2 and out.run == 1 and out.run_first == {}
    out.feed("stdout", b'{"event": "start"}\n')
    assert out.current_run == 2 and out.run == 2 and "start" in out.run_first
