"""Paired rounds: host and container measured alternately, compared round by round.

A single host pass and a single container pass minutes apart compare two moments of
a shared machine as much as two placements: a neighbour that runs during one of them
turns a ratio of 1.0 into 0.06. So every mechanism and size is measured in ``rounds``
rounds, each a host pair and a container pair back to back (the order alternates from
one round to the next, so slow drift favours neither), the ratio container/host is
taken *per round*, and the row reports the median ratio with its spread. When the
rounds disagree, the row says the machine was too noisy instead of printing a number.

``stable`` is meant to predict that a second run agrees, so it is decided from what
estimates run-to-run spread: the run takes its rounds round-major (round 1 of every row,
then round 2 of every row..., rows and the placement order shuffled within a round), so
one row's rounds are spread over the whole run and meet the machine's slow phases the
way a second run would; then the row must pass two tests: the middle half of its
per-round ratios lies within ±10 % of their median, and the median ratio of the rounds
of the first half of the run and that of the second half agree within 5 % (two halves
of one run standing in for two runs).

Pure Python over Records: everything here unit-tests on synthetic samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from labctl.bench.records import Record

# A row is "stable" when the middle half of its per-round ratios lies within this
# share of their median (interquartile range inside ±10 %): one disturbed round out
# of five moves min or max, not the quartiles; two or more do.
NOISE_TOLERANCE = 0.10
# ... and the two halves of the run (rounds in time order) give median ratios within
# this share of each other: half of the 10 % within which two runs must agree.
HALF_AGREEMENT = 0.05
MIN_ROUNDS_FOR_VERDICT = 3


@dataclass(frozen=True)
class Paired:
    """One mechanism and size over its rounds: container/host ratios and their spread.

    ``ratios`` are per-round ``container rtt_ns_median / host rtt_ns_median``;
    ``host_ns``/``container_ns`` are the medians (ns per round trip) of each placement's
    per-round medians. ``halves`` are the median ratios of the first and the second half
    of the rounds (in the order they ran). ``verdict`` is ``stable``, ``noisy`` or ``too
    few rounds``; ``why`` says which test a noisy row failed.
    """

    mechanism: str
    size: int
    rounds: int
    ratios: tuple[float, ...]
    ratio_median: float
    ratio_min: float
    ratio_max: float
    ratio_q1: float
    ratio_q3: float
    host_ns: int
    container_ns: int
    verdict: str
    halves: tuple[float, float] = (0.0, 0.0)
    why: str = ""

    @property
    def stable(self) -> bool:
        return self.verdict == "stable"

    def to_json(self) -> dict:
        """The JSON ``paired`` entry of the row."""
        return {"mechanism": self.mechanism, "size": self.size, "rounds": self.rounds,
                "ratio_median": round(self.ratio_median, 4), "ratio_min": round(self.ratio_min, 4),
                "ratio_max": round(self.ratio_max, 4), "ratio_q1": round(self.ratio_q1, 4),
                "ratio_q3": round(self.ratio_q3, 4), "ratios": [round(r, 4) for r in self.ratios],
                "host_rtt_ns_median": self.host_ns, "container_rtt_ns_median": self.container_ns,
                "halves": [round(h, 4) for h in self.halves], "verdict": self.verdict, "why": self.why}

    def spread(self) -> str:
        """``0.98 (IQR 0.95–1.02, range 0.90–1.10)``."""
        return (f"{self.ratio_median:.2f} (IQR {self.ratio_q1:.2f}-{self.ratio_q3:.2f}, "
                f"range {self.ratio_min:.2f}-{self.ratio_max:.2f})")


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile (linear interpolation between the
    closest ranks, the "inclusive" method); a single value is all three."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        v = float(values[0])
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def halves(ratios: Sequence[float]) -> tuple[float, float]:
    """The median of the first ``len // 2`` ratios and that of the rest (rounds in the
    order they ran). ValueError under two ratios."""
    if len(ratios) < 2:
        raise ValueError("halves need two ratios at least")
    mid = len(ratios) // 2
    return statistics.median(ratios[:mid]), statistics.median(ratios[mid:])


def judge(ratios: Sequence[float], tolerance: float = NOISE_TOLERANCE,
          half_agreement: float = HALF_AGREEMENT) -> tuple[str, str]:
    """``(verdict, why)``: ``stable`` when the interquartile range of ``ratios`` (in the
    order they ran) lies within ±``tolerance`` of their median and the medians of the two
    halves differ by at most ``half_agreement`` of the larger; ``noisy`` otherwise, with
    the failed test in ``why``; ``too few rounds`` under three."""
    if len(ratios) < MIN_ROUNDS_FOR_VERDICT:
        return "too few rounds", f"{len(ratios)} round(s); {MIN_ROUNDS_FOR_VERDICT} needed"
    q1, med, q3 = quartiles(ratios)
    if med <= 0:
        return "noisy", "non-positive median ratio"
    if not (q1 >= med * (1 - tolerance) and q3 <= med * (1 + tolerance)):
        return "noisy", f"IQR {q1:.2f}-{q3:.2f} wider than +-{100 * tolerance:.0f} % of {med:.2f}"
    a, b = halves(ratios)
    diff = abs(a - b) / max(a, b)
    if diff > half_agreement:
        return "noisy", f"halves of the run disagree: {a:.2f} vs {b:.2f} ({100 * diff:.0f} % > {100 * half_agreement:.0f} %)"
    return "stable", ""


def verdict(ratios: Sequence[float], tolerance: float = NOISE_TOLERANCE) -> str:
    """The verdict of ``judge`` alone."""
    return judge(ratios, tolerance)[0]


def pair_rounds(host: Sequence[Record], container: Sequence[Record],
                tolerance: float = NOISE_TOLERANCE) -> Paired:
    """The Paired row of one mechanism and size from its rounds, in round order:
    ``host[i]`` and ``container[i]`` were measured back to back. Raises ValueError when
    the lists differ in length, are empty, or mix mechanisms or sizes."""
    if not host or len(host) != len(container):
        raise ValueError(f"need as many host as container rounds (got {len(host)} and {len(container)})")
    keys = {(r.mechanism, r.size) for r in (*host, *container)}
    if len(keys) != 1:
        raise ValueError(f"rounds of different rows: {sorted(keys)}")
    (mechanism, size), = keys
    ratios = tuple(c.rtt_ns_median / h.rtt_ns_median for h, c in zip(host, container) if h.rtt_ns_median > 0)
    if not ratios:
        raise ValueError("no host round with a positive median")
    q1, med, q3 = quartiles(ratios)
    verdict_, why = judge(ratios, tolerance)
    return Paired(mechanism, size, len(ratios), ratios, med, min(ratios), max(ratios), q1, q3,
                  int(statistics.median(r.rtt_ns_median for r in host)),
                  int(statistics.median(r.rtt_ns_median for r in container)),
                  verdict_, halves(ratios) if len(ratios) >= 2 else (med, med), why)


def combine(rounds: Sequence[Record]) -> Record:
    """One Record standing for a placement's rounds (the JSON ``results`` entry): the
    median over rounds of each per-round figure, iterations summed. Raises ValueError
    on an empty list."""
    if not rounds:
        raise ValueError("no rounds")
    first = rounds[0]

    def med(attr: str) -> int:
        return int(statistics.median(getattr(r, attr) for r in rounds))

    return Record(
        first.mechanism, first.placement, first.size, med("rtt_ns_median"), med("rtt_ns_p99"),
        med("msgs_per_s"), med("bytes_per_s"), iterations=sum(r.iterations for r in rounds),
        rtt_ns_min=min(r.rtt_ns_min for r in rounds), rtt_ns_mean=med("rtt_ns_mean"),
        pinned=all(r.pinned for r in rounds), complete=all(r.complete for r in rounds),
        msgs_per_s_sustained=med("msgs_per_s_sustained"), bytes_per_s_sustained=med("bytes_per_s_sustained"),
        batch=max(r.batch for r in rounds), clock_tick_ns=max(r.clock_tick_ns for r in rounds),
        rounds=len(rounds),
    )
