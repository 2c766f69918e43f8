"""``exit``: the container exits with a code (any of a list) or is killed by a signal."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import Ref
from labctl.scenario.compound import AnyOf, F, ListOf, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, describe_exit, not_started, ref, signal_number
from labctl.scenario.spec import INVALID, Bool, Int, PDict, Str


@dataclass(frozen=True)
class ExitCheck:
    """The container exits with ``code`` (any of them), or is killed by ``signal`` (e.g. SIGBUS);
    ``oom_killed``: the kernel's OOM killer ended it for exceeding its memory cgroup limit
    (exit 137) or not, as the engine tells: its OOMKilled flag, or on Docker an ``oom``
    event the engine logged for the container since its start (Docker misses the flag when
    that event comes after the exit). With only ``oom_killed``, any code goes."""

    container: str
    codes: tuple[int, ...] = ()
    signal: str | None = None
    oom_killed: bool | None = None  # OOM-killed (the engine's flag or logged oom event) must be this


SPEC = Obj({
    "container": F(Ref(), True),
    "code": F(AnyOf((Int(maximum=255), ListOf(Int(maximum=255), min_items=1)),
                    expected="an exit code or a list of exit codes", description="exit code(s), default 0")),
    "signal": F(Str("killed by this signal", pattern=r"^SIG[A-Z0-9]+$", what="signal",
                    hint="expected a name such as SIGBUS")),
    "oom_killed": F(Bool("the memory cgroup's OOM killer ended it: the engine's OOMKilled flag or its logged oom event")),
}, "the container exits with a code or is killed by a signal", exclusive=(("code", "signal"),))


def build(b: Builder, d: PDict, path: str) -> tuple[ExitCheck, str]:
    c = ref(b, d, "container", path)
    code = get(d, "code")
    oom = get(d, "oom_killed")
    only_oom = oom is not None and "code" not in d and "signal" not in d
    codes = () if "signal" in d or only_oom else tuple(code) if isinstance(code, list) else (
        code if code is not None else 0,)
    return ExitCheck(c, tuple(x for x in codes if x is not INVALID), get(d, "signal"), oom), \
        f"exit {c}" + (" OOM-killed" if oom else "")


def expected(body: ExitCheck) -> str:
    if body.oom_killed is not None:
        oom = f"{body.container} {'OOM-killed' if body.oom_killed else 'not OOM-killed'}"
        rest = expected(ExitCheck(body.container, body.codes, body.signal)) if body.codes or body.signal else ""
        return oom + (f", {rest.split(' ', 1)[1]}" if rest else "")
    if body.signal:
        return f"{body.container} killed by {body.signal}"
    if not body.codes:
        return f"{body.container} exits normally"
    return f"{body.container} exits with " + " or ".join(str(c) for c in body.codes)


def judge(body: ExitCheck, obs: Observation, look: Look) -> Verdict:
    if (v := not_started(obs, body.container)) is not None:
        return Verdict(False, expected(body), v.observed, True)
    status = obs.wait_exit(body.container, look.left())
    if status is None:
        return Verdict(False, expected(body), f"{body.container} still running", final=False)
    if body.signal:
        ok = status.signal == signal_number(body.signal)
    elif body.codes:
        ok = status.code in body.codes  # a listed code counts even in the 129-159 range
    else:
        ok = status.signal is None or body.oom_killed is not None
    if body.oom_killed is not None:
        ok = ok and status.oom_killed == body.oom_killed
    return Verdict(ok, expected(body), f"{body.container}: {describe_exit(status)}", final=True)


KIND = CheckKind("exit", ExitCheck, SPEC, build, judge)
