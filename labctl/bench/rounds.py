"""Paired rounds: host and container measured alternately, compared round by round.

A single host pass and a single container pass minutes apart compare two moments of
a shared machine as much as two placements: a neighbour that runs during one of them
turns a ratio of 1.0 into 0.06. So every mechanism and size is measured in ``rounds``
rounds, each a host pair and a container pair back to back (the order alternates from
one round to the next, so slow drift favours neither), the ratio container/host is
taken *per round*, and the row reports the median ratio with its spread. When the
rounds disagree, the row says the machine was too noisy instead of printing a number.

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
MIN_ROUNDS_FOR_VERDICT = 3


@dataclass(frozen=True)
class Paired:
    """One mechanism and size over its rounds: container/host ratios and their spread.

    ``ratios`` are per-round ``container rtt_ns_median / host rtt_ns_median``;
    ``host_ns``/``container_ns`` are the medians (ns per round trip) of each placement's
    per-round medians. ``verdict`` is ``stable``, ``noisy`` or ``too few rounds``.
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
                "verdict": self.verdict}

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


def verdict(ratios: Sequence[float], tolerance: float = NOISE_TOLERANCE) -> str:
    """``stable`` when the interquartile range of ``ratios`` lies within ±``tolerance``
    of their median, ``noisy`` when it does not, ``too few rounds`` under three."""
    if len(ratios) < MIN_ROUNDS_FOR_VERDICT:
        return "too few rounds"
    q1, med, q3 = quartiles(ratios)
    if med <= 0:
        return "noisy"
    return "stable" if q1 >= med * (1 - tolerance) and q3 <= med * (1 + tolerance) else "noisy"


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
    return Paired(mechanism, size, len(ratios), ratios, med, min(ratios), max(ratios), q1, q3,
                  int(statistics.median(r.rtt_ns_median for r in host)),
                  int(statistics.median(r.rtt_ns_median for r in container)),
                  verdict(ratios, tolerance))


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
