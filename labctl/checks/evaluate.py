"""Check evaluation: the driver that applies deadlines to the kinds' judges.

Each kind (``labctl.scenario.kinds``: one module per kind, listed in ``registry.KINDS``)
judges one look at the run through the ``Observation`` protocol, so every kind is
unit-tested against a small fake. ``evaluate`` repeats the look until it holds
(eventually) or for as long as it must hold (consistently), waiting on output changes
rather than sleeping where it can.
"""

from __future__ import annotations

import time
from typing import Callable

from labctl.errors import LabctlError
from labctl.runtime.logs import Output
from labctl.report.results import CheckResult
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, describe_exit
from labctl.scenario.kinds.registry import kind_of
from labctl.scenario.model import CheckSpec

__all__ = ["Observation", "Verdict", "describe_exit", "evaluate", "tally"]

POLL_MIN = 0.02
POLL_MAX = 0.25
# A check on a chatty container's output is woken by every read of its stream (thousands
# a second), and judging it formats its whole verdict. After each judgement the check
# rests ``JUDGE_REST`` times as long as that judgement took, at least ``REST_MIN`` and at
# most ``REST_MAX`` seconds, so re-judging takes at most about 1/(1 + JUDGE_REST) of the
# time and a check wakes at most 1/REST_MIN times a second: each wake-up costs more CPU
# than the judgement itself (taking the GIL from the reader thread, the waits), about
# 0.3-0.7 us per event of a flood when woken per read. The rest ends early when the
# output ends; a verdict that a change during a rest decides comes that much later.
JUDGE_REST = 9.0
REST_MIN = 0.005
REST_MAX = 0.02


def _kind(check: CheckSpec) -> CheckKind:
    """The kind of ``check``, known by its body's model (the registry's table)."""
    try:
        return kind_of(check.body)
    except KeyError:
        raise LabctlError(f"unknown check kind {check.kind!r}") from None


def _judge(check: CheckSpec, obs: Observation, deadline: float, clock: Callable[[], float]) -> Verdict:
    return _kind(check).judge(check.body, obs, Look(deadline, clock, check.consistently is not None))


def tally(body: object, out: Output) -> object | None:
    """The incremental tally check ``body``'s kind judges from, attached to ``out`` (its
    container's output, before the container starts); None for kinds that need none."""
    try:
        return kind_of(body).tally(body, out)
    except KeyError:
        return None


def _watched_output(check: CheckSpec, obs: Observation) -> Output | None:
    container = _kind(check).watch(check.body)
    return obs.output(container) if container else None


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
    pause = POLL_MIN
    last: Verdict | None = None
    try:
        out = _watched_output(check, obs)
        while True:
            seen = out.version if out is not None else 0
            t_judge = clock()
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
                rest = min(max((now - t_judge) * JUDGE_REST, REST_MIN), REST_MAX, deadline - now)
                if rest > 0 and not out.closed:
                    out.ended.wait(rest)  # rate of re-judging, not synchronisation: see JUDGE_REST
                out.wait_change(seen, deadline, clock)
            else:
                sleep(min(pause, max(0.0, deadline - now)))  # polling engine state: bounded backoff
                pause = min(pause * 2, POLL_MAX)
    except LabctlError as e:
        return CheckResult(check.name, "error", f"{e}", duration_s=clock() - start)
    except Exception as e:  # noqa: BLE001 - a probe's odd reply, a bug: this check errs, the run goes on
        return CheckResult(check.name, "error", f"{type(e).__name__}: {e}", duration_s=clock() - start)


def _result(check: CheckSpec, v: Verdict, start: float, clock: Callable[[], float], note: str = "") -> CheckResult:
    if v.ok:
        return CheckResult(check.name, "passed", "", v.expected, v.observed, clock() - start)
    msg = f"expected {v.expected}; observed {v.observed}" + (f" ({note})" if note else "")
    return CheckResult(check.name, "failed", msg, v.expected, v.observed, clock() - start)
