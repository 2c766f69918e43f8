"""``events``: JSON events a container printed, counted and compared."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.common import EVENT_RE, SCALAR, Ref
from labctl.scenario.compound import DictOf, ExpectT, F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, not_started, ref
from labctl.scenario.model import Expect
from labctl.scenario.spec import INVALID, Int, PDict, Str, join


@dataclass(frozen=True)
class EventsCheck:
    """Events (JSON lines) of ``container`` whose "event" is ``event`` and whose fields
    satisfy ``where``: at least ``min``, at most ``max`` of them; with ``rising``, that
    field strictly increases across them; ``errno`` is shorthand for where errno == X."""

    container: str
    event: str
    where: tuple[tuple[str, Expect], ...] = ()
    min: int = 1
    max: int | None = None
    rising: str | None = None


FIELDS = Obj({
    "container": F(Ref(), True),
    "event": F(Str("the JSON event name", pattern=EVENT_RE, what="event name"), True),
    "where": F(DictOf(ExpectT(SCALAR), "FIELD: VALUE or FIELD: {OP: VALUE}")),
    "errno": F(Str("shorthand for where errno == X", pattern=r"^E[A-Z0-9]+$", what="errno",
                   hint="expected a name such as ENOENT")),
    "min": F(Int("at least this many events (default 1)", maximum=10**9)),
    "max": F(Int("at most this many events", maximum=10**9)),
    "rising": F(Str("this field strictly increases across the events", pattern=r"^[a-z_][a-z0-9_]*$",
                    what="field name")),
}, "JSON events of a container")


def build(b: Builder, d: PDict, path: str) -> tuple[EventsCheck, str]:
    c = ref(b, d, "container", path)
    mn, mx = get(d, "min", 1), get(d, "max")
    if mx is not None and mx < mn:
        b.ctx.at(d.node.value["max"], join(path, "max"), f"max ({mx}) is below min ({mn})")
    conds = [(k, v) for k, v in get(d, "where", {}).items() if v is not INVALID]
    if "errno" in d and get(d, "errno"):
        conds.append(("errno", Expect("eq", d["errno"])))
    event = get(d, "event", "")
    return EventsCheck(c, event, tuple(conds), mn, mx, get(d, "rising")), f"events {c} {event}"


def judge(body: EventsCheck, obs: Observation, look: Look) -> Verdict:
    if (v := not_started(obs, body.container, f"{body.event!r} event(s) from {body.container}")) is not None:
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
            return Verdict(False, expected, observed + " (not strictly rising)", final=True)
    if not named:
        errors = [e for e in events if e.get("event") == "error"]
        if errors:
            e = errors[-1]
            observed += f"; last error: {e.get('call')}: {e.get('errno')} ({e.get('message')})"
    if body.max is not None and ok and not closed and not look.consistently:
        # An upper bound only means something once the container can emit no more.
        return Verdict(False, expected, observed + " so far (still running)", final=False)
    if body.max is not None and len(matched) > body.max:
        return Verdict(False, expected, observed, final=True)
    return Verdict(ok, expected, observed, final=closed)


KIND = CheckKind("events", EventsCheck, FIELDS, build, judge, watch=lambda body: body.container)
