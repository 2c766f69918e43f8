"""``events``: JSON events a container printed, counted and compared."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import EVENT_RE, SCALAR, Ref
from labctl.scenario.compound import DictOf, ExpectT, F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, not_started, ref
from labctl.scenario.model import Expect
from labctl.scenario.spec import INVALID, Int, PDict, Str, join
from labctl.runtime.logs import Output
from labctl.checks.watch import EventTally


@dataclass(frozen=True)
class EventsCheck:
    """Events (JSON lines) of ``container`` whose "event" is ``event`` and whose fields
    satisfy ``where``: at least ``min``, at most ``max`` of them; with ``rising``, that
    field strictly increases across them; ``errno`` is shorthand for where errno == X.
    Every event carries ``run``: 1 for the container's first run, 2 after its first
    restart... (``where: {run: 2}``). ``since_step``: count only events printed after
    the current step of the timeline began (``since: step``)."""

    container: str
    event: str
    where: tuple[tuple[str, Expect], ...] = ()
    min: int = 1
    max: int | None = None
    rising: str | None = None
    since_step: bool = False  # only events after the current step began (steps only)


SPEC = Obj({
    "container": F(Ref(), True),
    "event": F(Str("the JSON event name", pattern=EVENT_RE, what="event name"), True),
    "where": F(DictOf(ExpectT(SCALAR), "FIELD: VALUE or FIELD: {OP: VALUE}")),
    "errno": F(Str("shorthand for where errno == X", pattern=r"^E[A-Z0-9]+$", what="errno",
                   hint="expected a name such as ENOENT")),
    "min": F(Int("at least this many events (default 1)", maximum=10**9)),
    "max": F(Int("at most this many events", maximum=10**9)),
    "rising": F(Str("this field strictly increases across the events", pattern=r"^[a-z_][a-z0-9_]*$",
                    what="field name")),
    "since": F(Str("step: count only events printed after this step began (in steps:)",
                   enum=("start", "step"), what="since")),
}, "JSON events of a container (each with run: N, the container's run that printed it)")


def build(b: Builder, d: PDict, path: str) -> tuple[EventsCheck, str]:
    c = ref(b, d, "container", path)
    mn, mx = get(d, "min", 1), get(d, "max")
    if mx is not None and mx < mn:
        b.ctx.at(d.node.value["max"], join(path, "max"), f"max ({mx}) is below min ({mn})")
    conds = [(k, v) for k, v in get(d, "where", {}).items() if v is not INVALID]
    if "errno" in d and get(d, "errno"):
        conds.append(("errno", Expect("eq", d["errno"])))
    event = get(d, "event", "")
    since = get(d, "since", "start") == "step"
    if since and not path.startswith("steps["):
        b.ctx.at(d.node.value["since"], join(path, "since"), "since: step applies only to a check in steps:")
    return EventsCheck(c, event, tuple(conds), mn, mx, get(d, "rising"), since), f"events {c} {event}"


def tally(body: EventsCheck, out: Output) -> EventTally:
    return EventTally(body.event, body.where, body.rising).attach(out)


def judge(body: EventsCheck, obs: Observation, look: Look) -> Verdict:
    if (v := not_started(obs, body.container, f"{body.event!r} event(s) from {body.container}")) is not None:
        return v
    out, t = obs.output(body.container), obs.watcher(body)
    assert out is not None and isinstance(t, EventTally)
    with out.changed:  # the tally is fed under this lock: one consistent reading
        closed = out.closed
        named, matched, last, not_rising, last_error = t.named, t.matched, t.last_matched, t.not_rising, t.last_error
        rising = t.rising_text() if body.rising else ""
    parts = [f"at least {body.min}"] + ([f"at most {body.max}"] if body.max is not None else [])
    cond = " and ".join(f"{k} {e.describe()}" for k, e in body.where)
    expected = f"{' and '.join(parts)} {body.event!r} event(s) from {body.container}" + (f" with {cond}" if cond else "")
    if body.rising:
        expected += f", {body.rising} strictly rising"
    if body.since_step:
        expected += " since this step began"
    observed = f"{matched} matching of {named} {body.event!r} event(s)"
    if last is not None and body.where:
        observed += " (" + ", ".join(f"{k}={last.get(k)!r}" for k, _ in body.where) + ")"
    ok = matched >= body.min and (body.max is None or matched <= body.max)
    if body.rising:
        observed += f"; {body.rising}: {rising}"
        if not_rising is not None:
            return Verdict(False, expected, observed + f" (not strictly rising: {not_rising[1]!r} after "
                           f"{not_rising[0]!r})", final=True)
    if not named and last_error is not None:
        e = last_error
        observed += f"; last error: {e.get('call')}: {e.get('errno')} ({e.get('message')})"
    if body.max is not None and ok and not closed and not look.consistently:
        # An upper bound only means something once the container can emit no more.
        return Verdict(False, expected, observed + " so far (still running)", final=False)
    if body.max is not None and matched > body.max:
        return Verdict(False, expected, observed, final=True)
    return Verdict(ok, expected, observed, final=closed)


KIND = CheckKind("events", EventsCheck, SPEC, build, judge, watch=lambda body: body.container, tally=tally)
