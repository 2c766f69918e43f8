"""Check evaluation: each kind judges one observation; the driver applies deadlines.

Checks see a scenario run only through the ``Observation`` protocol, so each kind is
unit-tested against a small fake. A kind's ``judge`` looks once and returns a Verdict;
``evaluate`` repeats it until it holds (eventually) or for as long as it must hold
(consistently), waiting on output changes rather than sleeping where it can.
"""

from __future__ import annotations

import re
import signal as _signal
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from labctl.errors import LabctlError
from labctl.output import ExitStatus, Output
from labctl.results import CheckResult
from labctl.scenario.model import (
    CheckSpec, CleanupCheck, EventsCheck, Expect, ExitCheck, FileCheck, NamespaceCheck,
    OutputCheck, RefusedCheck, SegmentCheck, layout_arg,
)

POLL_MIN = 0.02
POLL_MAX = 0.25


class Observation(Protocol):
    """What a check may look at. The runner implements it over the engine; tests fake it."""

    def output(self, container: str) -> Output | None:
        """The container's output, or None if it never started."""

    def refusal(self, container: str) -> str | None:
        """The engine's reason if it refused to create/start the container."""

    def wait_exit(self, container: str, timeout: float) -> ExitStatus | None:
        """Block up to ``timeout`` s for the container to exit; None if still running."""

    def ipc_namespace(self, container: str) -> str | None:
        """The IPC namespace id (``ipc:[N]``) of a container, or of labctl for ``host``."""

    def probe_ipc(self, container: str, args: list[str]) -> dict:
        """Run ``shmlab probe ARGS`` inside the IPC namespace of ``container``."""

    def probe_file(self, container: str, args: list[str]) -> dict:
        """Run ``shmlab probe ARGS`` with the same volumes as ``container``."""

    def leftovers(self) -> list[str]:
        """Objects of this scenario still on the engine (after teardown), and host IPC changes."""


@dataclass(frozen=True)
class Verdict:
    """One look: ``ok``; ``final`` when later looks cannot change the answer."""

    ok: bool
    expected: str
    observed: str
    final: bool = False


# --------------------------------------------------------------------------- helpers


def _signal_number(name: str) -> int:
    try:
        return int(_signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError as e:
        raise LabctlError(f"unknown signal {name!r}") from e


def describe_exit(status: ExitStatus) -> str:
    """``exit 0`` or ``killed by SIGBUS (exit 135)``."""
    if status.signal:
        try:
            name = _signal.Signals(status.signal).name
        except ValueError:
            name = f"signal {status.signal}"
        return f"killed by {name} (exit {status.code})" + (", OOM-killed" if status.oom_killed else "")
    return f"exit {status.code}" + (", OOM-killed" if status.oom_killed else "")


def _fields_verdict(fields: tuple[tuple[str, Expect], ...], observed: dict) -> list[str]:
    bad = []
    for name, exp in fields:
        got = observed.get(name)
        if not exp.holds(got):
            bad.append(f"{name} {exp.describe()} (observed {got!r})")
    return bad


def _not_started(obs: Observation, container: str, expected: str = "") -> Verdict | None:
    if obs.output(container) is None:
        reason = obs.refusal(container)
        why = f"the engine refused it: {reason}" if reason else "it never started"
        return Verdict(False, expected or f"output from {container}",
                       f"container {container!r} did not run: {why}", final=True)
    return None


# --------------------------------------------------------------------------- kinds


def judge_exit(body: ExitCheck, obs: Observation, deadline: float, clock: Callable[[], float]) -> Verdict:
    if (v := _not_started(obs, body.container)) is not None:
        return Verdict(False, _expect_exit(body), v.observed, True)
    status = obs.wait_exit(body.container, max(0.0, deadline - clock()))
    expected = _expect_exit(body)
    if status is None:
        return Verdict(False, expected, f"{body.container} still running", final=False)
    if body.signal:
        ok = status.signal == _signal_number(body.signal)
    elif body.codes:
        ok = status.code in body.codes  # a listed code counts even in the 129-159 range
    else:
        ok = status.signal is None
    return Verdict(ok, expected, f"{body.container}: {describe_exit(status)}", final=True)


def _expect_exit(body: ExitCheck) -> str:
    if body.signal:
        return f"{body.container} killed by {body.signal}"
    if not body.codes:
        return f"{body.container} exits normally"
    return f"{body.container} exits with " + " or ".join(str(c) for c in body.codes)


def judge_events(body: EventsCheck, obs: Observation, consistently: bool) -> Verdict:
    if (v := _not_started(obs, body.container, f"{body.event!r} event(s) from {body.container}")) is not None:
        return v
    out = obs.output(body.container)
    assert out is not None
    with out.changed:
        events = list(out.events)
        closed = out.closed
    named = [e for e in events if e.get("event") == body.event]
    matched = [e for e in named if all(exp.holds(e.get(f)) for f, exp in body.where)]
    parts = [f"at least {body.min}"] + ([f"at most {body.max}"] if body.max is not None else [])
    cond = " and ".join(f"{k} {e.describe()}" for k, e in body.where)
    expected = f"{' and '.join(parts)} {body.event!r} event(s) from {body.container}" + (f" with {cond}" if cond else "")
    if body.rising:
        expected += f", {body.rising} strictly rising"
    observed = f"{len(matched)} matching of {len(named)} {body.event!r} event(s)"
    if matched and body.where:
        observed += " (" + ", ".join(f"{k}={matched[-1].get(k)!r}" for k, _ in body.where) + ")"
    ok = len(matched) >= body.min and (body.max is None or len(matched) <= body.max)
    if body.rising:
        values = [e.get(body.rising) for e in matched]
        observed += f"; {body.rising}: {', '.join(str(v) for v in values[:20])}" + (" ..." if len(values) > 20 else "")
        if any(not isinstance(b, (int, float)) or not isinstance(a, (int, float)) or b <= a for a, b in zip(values, values[1:])):
            ok = False
            return Verdict(False, expected, observed + " (not strictly rising)", final=True)
    if not named:
        errors = [e for e in events if e.get("event") == "error"]
        if errors:
            e = errors[-1]
            observed += f"; last error: {e.get('call')}: {e.get('errno')} ({e.get('message')})"
    if body.max is not None and ok and not closed and not consistently:
        # An upper bound only means something once the container can emit no more.
        return Verdict(False, expected, observed + " so far (still running)", final=False)
    if body.max is not None and len(matched) > body.max:
        return Verdict(False, expected, observed, final=True)
    return Verdict(ok, expected, observed, final=closed)


def judge_output(body: OutputCheck, obs: Observation, consistently: bool) -> Verdict:
    pattern = body.matches if body.matches is not None else body.not_matches
    if (v := _not_started(obs, body.container, f"{body.container}'s {body.stream} (/{pattern}/)")) is not None:
        return v
    out = obs.output(body.container)
    assert out is not None
    with out.changed:
        lines = (out.stdout if body.stream in ("stdout", "both") else []) + (
            out.stderr if body.stream in ("stderr", "both") else [])
        lines = list(lines)
        closed = out.closed
    if body.matches is not None:
        rx = re.compile(body.matches)
        hit = next((line for line in lines if rx.search(line)), None)
        return Verdict(hit is not None, f"a line of {body.container}'s {body.stream} matching /{body.matches}/",
                       f"matched: {hit!r}" if hit else f"no match in {len(lines)} line(s)", final=closed or hit is not None)
    rx = re.compile(body.not_matches or "")
    hit = next((line for line in lines if rx.search(line)), None)
    expected = f"no line of {body.container}'s {body.stream} matching /{body.not_matches}/"
    if hit is not None:
        return Verdict(False, expected, f"matched: {hit!r}", final=True)
    if not closed and not consistently:
        return Verdict(False, expected, f"no match in {len(lines)} line(s) so far (still running)", final=False)
    return Verdict(True, expected, f"no match in {len(lines)} line(s)", final=closed)


def judge_namespace(body: NamespaceCheck, obs: Observation) -> Verdict:
    a, b = obs.ipc_namespace(body.a), obs.ipc_namespace(body.b)
    expected = f"{body.a} and {body.b} in {'the same' if body.same else 'different'} IPC namespace(s)"
    if a is None or b is None:
        missing = body.a if a is None else body.b
        return Verdict(False, expected, f"the IPC namespace of {missing} could not be read", final=False)
    ok = (a == b) == body.same
    return Verdict(ok, expected, f"{body.a}: {a}, {body.b}: {b}", final=True)


def _segment_args(body: SegmentCheck, shmid: int | None) -> list[str]:
    args = ["probe", "--segments"]
    if body.key is not None:
        args += ["--key", str(body.key)]
    if shmid is not None:
        args += ["--shmid", str(shmid)]
    if body.layout:
        args += ["--layout", layout_arg(body.layout)]
    return args


def _attached_shmid(obs: Observation, container: str) -> int | None:
    out = obs.output(container)
    if out is None:
        return None
    with out.changed:
        for e in out.events:
            if e.get("event") == "attached" and isinstance(e.get("shmid"), int):
                return int(e["shmid"])
    return None


def judge_segment(body: SegmentCheck, obs: Observation) -> Verdict:
    what = f"key {body.key}" if body.key is not None else f"the segment {body.shmid_from} attached"
    shmid = None
    if body.shmid_from is not None:
        shmid = _attached_shmid(obs, body.shmid_from)
        if shmid is None:
            return Verdict(False, f"segment ({what})", f"{body.shmid_from} reported no 'attached' event with a shmid")
    found = obs.probe_ipc(body.in_, _segment_args(body, shmid))
    segs = [s for s in found.get("segments", []) if (body.key is None or s.get("key") == body.key)
            and (shmid is None or s.get("shmid") == shmid)]
    where = f"in the IPC namespace of {body.in_}"
    if not body.present:
        expected = f"no segment with {what} {where}"
        if segs:
            s = segs[0]
            return Verdict(False, expected, f"present: shmid {s.get('shmid')}, size {s.get('size')}, nattch {s.get('nattch')}"
                           + (", marked for removal" if s.get("dest") else ""))
        return Verdict(True, expected, "absent")
    wants = []
    for label, exp in (("size", body.size), ("nattch", body.nattch), ("perms", body.perms)):
        if exp is not None:
            wants.append(f"{label} {exp.describe() if label != 'perms' else _octal(exp)}")
    if body.dest is not None:
        wants.append("marked for removal" if body.dest else "not marked for removal")
    wants += [f"{n} {e.describe()}" for n, e in body.fields]
    expected = f"a segment with {what} {where}" + (f": {', '.join(wants)}" if wants else "")
    if not segs:
        return Verdict(False, expected, f"no such segment ({len(found.get('segments', []))} segment(s) visible)")
    s = segs[0]
    bad = []
    for label, exp in (("size", body.size), ("nattch", body.nattch), ("perms", body.perms)):
        if exp is not None and not exp.holds(s.get(label)):
            got = s.get(label)
            bad.append(f"{label} {oct(got) if label == 'perms' and isinstance(got, int) else got}")
    if body.dest is not None and bool(s.get("dest")) != body.dest:
        bad.append("marked for removal" if s.get("dest") else "not marked for removal")
    bad += _fields_verdict(body.fields, s.get("fields") or {})
    observed = f"shmid {s.get('shmid')}, size {s.get('size')}, nattch {s.get('nattch')}, perms {oct(s.get('perms') or 0)}"
    if s.get("fields"):
        observed += f", fields {s['fields']}"
    if bad:
        observed += "; mismatched: " + "; ".join(bad)
    return Verdict(not bad, expected, observed)


def _octal(exp: Expect) -> str:
    return exp.describe() if not isinstance(exp.value, int) else exp.describe().replace(repr(exp.value), oct(exp.value))


def _stat_args(body: FileCheck) -> list[str]:
    args = ["probe", "--stat", body.path]
    if body.layout:
        args += ["--layout", layout_arg(body.layout)]
    return args


def judge_file(body: FileCheck, obs: Observation) -> Verdict:
    st = obs.probe_file(body.container, _stat_args(body)).get("stat") or {}
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
        other = obs.probe_file(body.same_as, ["probe", "--stat", body.path]).get("stat") or {}
        observed += f"; in {body.same_as}: " + (f"dev {other.get('dev')} inode {other.get('ino')}" if other.get("exists") else "absent")
        if (other.get("dev"), other.get("ino")) != (st.get("dev"), st.get("ino")) or not other.get("exists"):
            bad.append("different file")
    bad += _fields_verdict(body.fields, st.get("fields") or {})
    if st.get("fields"):
        observed += f", fields {st['fields']}"
    if bad:
        observed += "; mismatched: " + "; ".join(bad)
    return Verdict(not bad, expected, observed)


def judge_refused(body: RefusedCheck, obs: Observation) -> Verdict:
    reason = obs.refusal(body.container)
    expected = f"the engine refuses to start {body.container} (/{body.matches}/)"
    if reason is None:
        started = obs.output(body.container) is not None
        return Verdict(False, expected, f"{body.container} {'started' if started else 'was not attempted'}", final=True)
    return Verdict(re.search(body.matches, reason) is not None, expected, f"refused: {reason}", final=True)


def judge_cleanup(body: CleanupCheck, obs: Observation) -> Verdict:
    left = obs.leftovers()
    return Verdict(not left, "nothing of the scenario left on the engine or in host IPC",
                   "left: " + ", ".join(left) if left else "nothing left", final=True)


# --------------------------------------------------------------------------- driver


def _judge(check: CheckSpec, obs: Observation, deadline: float, clock: Callable[[], float]) -> Verdict:
    b = check.body
    consistently = check.consistently is not None
    if isinstance(b, ExitCheck):
        return judge_exit(b, obs, deadline, clock)
    if isinstance(b, EventsCheck):
        return judge_events(b, obs, consistently)
    if isinstance(b, OutputCheck):
        return judge_output(b, obs, consistently)
    if isinstance(b, NamespaceCheck):
        return judge_namespace(b, obs)
    if isinstance(b, SegmentCheck):
        return judge_segment(b, obs)
    if isinstance(b, FileCheck):
        return judge_file(b, obs)
    if isinstance(b, RefusedCheck):
        return judge_refused(b, obs)
    if isinstance(b, CleanupCheck):
        return judge_cleanup(b, obs)
    raise LabctlError(f"unknown check kind {check.kind!r}")


def _watched_output(check: CheckSpec, obs: Observation) -> Output | None:
    container = getattr(check.body, "container", None)
    if isinstance(check.body, (EventsCheck, OutputCheck)) and container:
        return obs.output(container)
    return None


def evaluate(check: CheckSpec, obs: Observation, *, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, hard_deadline: float | None = None) -> CheckResult:
    """Run one check to its verdict within its deadline (clipped by ``hard_deadline``)."""
    start = clock()
    span = check.consistently if check.consistently is not None else check.timeout
    deadline = start + span
    if hard_deadline is not None and hard_deadline < deadline:
        left = max(0.0, hard_deadline - start)
        if check.consistently is not None:
            # Holding for less than the window proves less than the file asks: say so.
            return CheckResult(check.name, "error", f"the scenario's timeout leaves {left:.1f}s of the "
                               f"{check.consistently:g}s this check must hold; raise the scenario's timeout")
        deadline, span = hard_deadline, left
    out = _watched_output(check, obs)
    pause = POLL_MIN
    last: Verdict | None = None
    try:
        while True:
            seen = (len(out.stdout), len(out.stderr), out.closed) if out is not None else None
            last = _judge(check, obs, deadline, clock)
            now = clock()
            if check.consistently is not None:
                if not last.ok:
                    return _result(check, last, start, clock, f"failed after {now - start:.2f}s of {check.consistently:g}s")
                if last.final or now >= deadline:
                    return _result(check, last, start, clock)
            else:
                if last.ok or last.final:
                    return _result(check, last, start, clock)
                if now >= deadline:
                    return _result(check, last, start, clock, f"not met within {span:.3g}s")
            if out is not None:
                out.wait_for(lambda: (len(out.stdout), len(out.stderr), out.closed) != seen, deadline, clock)
            else:
                sleep(min(pause, max(0.0, deadline - now)))  # polling engine state: bounded backoff
                pause = min(pause * 2, POLL_MAX)
    except LabctlError as e:
        return CheckResult(check.name, "error", f"{e}", duration_s=clock() - start)


def _result(check: CheckSpec, v: Verdict, start: float, clock: Callable[[], float], note: str = "") -> CheckResult:
    if v.ok:
        return CheckResult(check.name, "passed", "", v.expected, v.observed, clock() - start)
    msg = f"expected {v.expected}; observed {v.observed}" + (f" ({note})" if note else "")
    return CheckResult(check.name, "failed", msg, v.expected, v.observed, clock() - start)
