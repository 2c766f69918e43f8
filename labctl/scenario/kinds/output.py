"""``output``: a line of a container's output matches (or no line matches) a regex."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import Ref
from labctl.scenario.compound import F, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict, not_started, ref
from labctl.scenario.spec import PDict, Regex, Str
from labctl.runtime.logs import Output
from labctl.checks.watch import LineSearch


@dataclass(frozen=True)
class OutputCheck:
    """A line of the container's output matches (``matches``) or no line matches
    (``not_matches``) the regular expression. ``stream``: stdout, stderr or both."""

    container: str
    matches: str | None = None
    not_matches: str | None = None
    stream: Literal["stdout", "stderr", "both"] = "both"


SPEC = Obj({
    "container": F(Ref(), True),
    "matches": F(Regex("a line matches")),
    "not_matches": F(Regex("no line matches")),
    "stream": F(Str("stdout | stderr | both (default)", enum=("stdout", "stderr", "both"), what="stream")),
}, "the container's output", one_of=("matches", "not_matches"))


def build(b: Builder, d: PDict, path: str) -> tuple[OutputCheck, str]:
    c = ref(b, d, "container", path)
    return OutputCheck(c, get(d, "matches"), get(d, "not_matches"), get(d, "stream", "both")), \
        f"output {c} {'matches' if 'matches' in d else 'not matches'}"


def tally(body: OutputCheck, out: Output) -> LineSearch:
    streams = ("stdout", "stderr") if body.stream == "both" else (body.stream,)
    return LineSearch(body.matches if body.matches is not None else body.not_matches or "", streams).attach(out)


def judge(body: OutputCheck, obs: Observation, look: Look) -> Verdict:
    pattern = body.matches if body.matches is not None else body.not_matches
    if (v := not_started(obs, body.container, f"{body.container}'s {body.stream} (/{pattern}/)")) is not None:
        return v
    out, t = obs.output(body.container), obs.watcher(body)
    assert out is not None and isinstance(t, LineSearch)
    with out.changed:
        hit, searched, closed = t.hit, t.searched, out.closed
    if body.matches is not None:
        return Verdict(hit is not None, f"a line of {body.container}'s {body.stream} matching /{body.matches}/",
                       f"matched: {hit!r}" if hit else f"no match in {searched} line(s)", final=closed or hit is not None)
    expected = f"no line of {body.container}'s {body.stream} matching /{body.not_matches}/"
    if hit is not None:
        return Verdict(False, expected, f"matched: {hit!r}", final=True)
    if not closed and not look.consistently:
        return Verdict(False, expected, f"no match in {searched} line(s) so far (still running)", final=False)
    return Verdict(True, expected, f"no match in {searched} line(s)", final=closed)


KIND = CheckKind("output", OutputCheck, SPEC, build, judge, watch=lambda body: body.container, tally=tally)
