"""Paired rounds: host and container measured alternately, compared round by round,
and as many rounds as a row needs for its verdict.

A single host pass and a single container pass minutes apart compare two moments of
a shared machine as much as two placements: a neighbour that runs during one of them
turns a ratio of 1.0 into 0.06. So every mechanism and size (a *row*) is measured in
rounds, each a host pair and a container pair back to back (in a shuffled order), the
ratio container/host is taken *per round*, and the row reports the median ratio with
its spread.

``stable`` must predict that a second run agrees (within 10 %, as
``benchmarks/compare_runs.py`` checks), so it is decided from an *interval* on the median
ratio, not from the spread of the rounds alone:

- the rounds are taken round-major (round 1 of every row, then round 2..., rows and the
  placement order shuffled within a round), so one row's rounds are spread over the
  whole run and meet the machine's slow phases the way a second run would;
- spread: the per-round ratios' scatter on a log scale, estimated robustly from the
  median absolute deviation (MAD x 1.4826, a standard deviation for normal scatter; a
  wild round moves it little), and never taken below the run's *typical* spread (the
  median over its rows): five rounds that happen to coincide do not make a row look
  tighter than the machine it ran on;
- standard error of the median: sqrt(pi/2) x spread / sqrt(rounds);
- interval: median x/÷ exp(h), with the half-width h = sqrt((2 x SE)^2 + 1 %^2), the
  1 % standing for what differs between two runs and no number of rounds removes;
- ``stable`` when h <= 5 % (two runs each within 5 % of the truth agree within 10 %)
  and the median ratios of the first and the second half of the rounds (in time)
  agree within 5 %; ``noisy`` otherwise, with the reason in ``why``.

Adaptive rounds (``labctl.bench.run_bench``): every row gets the minimum rounds; then
rounds are added, round-major, only for rows still *open* (not yet stable, and whose
interval could still shrink to 5 % within ``max_rounds`` at its present spread) and
whose further rounds fit in the time left (``plan_round``: fewest rounds needed first).
A row not stable when a bound is hit (``max_rounds``, or the time for extra rounds) is
``noisy``, its ``why`` giving the interval it reached. The verdict is a function of the
row's ratios and the run's typical spread only, so it can be recomputed from the JSON.
Checked on recorded runs by ``benchmarks/verdict_check.py``.

Pure Python over Records and floats: everything here unit-tests on synthetic samples.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Hashable, TypeVar

from labctl.bench.records import Record

# stable: the interval on the median ratio is within +-TARGET (as a share, log scale)...
TARGET = 0.05
# ... where the interval is Z standard errors of the median wide on each side ...
Z = 2.0
# ... plus this run-to-run term in quadrature (what more rounds cannot remove) ...
BETWEEN_RUNS = 0.01
# ... and the two halves of the run (rounds in time order) give median ratios within
# this share of each other.
HALF_AGREEMENT = 0.05
MIN_ROUNDS_FOR_VERDICT = 3
MAD_TO_SIGMA = 1.4826  # MAD x this = standard deviation of normal scatter
MEDIAN_SE = math.sqrt(math.pi / 2)  # SE of a median = this x sigma / sqrt(n) (normal scatter)

OPEN, STABLE, NOISY, TOO_FEW = "open", "stable", "noisy", "too few rounds"
# Why the extra rounds ended (``ended`` of judge and the JSON ``adaptive``).
ENDED_DECIDED, ENDED_MAX_ROUNDS, ENDED_TIME = "decided", "max rounds", "time"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Assessment:
    """Where a row stands: ``verdict`` is ``stable``, ``noisy``, ``open`` (more rounds
    could still make it stable) or ``too few rounds``; ``half_width`` the interval's
    half-width h (a share on the log scale: the interval is median x/÷ exp(h));
    ``spread`` the row's own spread (log-scale sigma), ``floor`` the one applied."""

    verdict: str
    why: str
    half_width: float
    spread: float
    floor: float


@dataclass(frozen=True)
class Paired:
    """One mechanism and size over its rounds: container/host ratios and their spread.

    ``ratios`` are per-round ``container rtt_ns_median / host rtt_ns_median``, in the
    order the rounds ran; ``host_ns``/``container_ns`` are the medians (ns per round
    trip) of each placement's per-round medians. ``halves`` are the median ratios of the
    first and the second half of the rounds. ``interval`` is (low, high) around
    ``ratio_median``, ``half_width`` its half-width (share, log scale), ``sigma`` the
    rounds' own spread and ``sigma_floor`` the run's typical spread (log-scale sigmas).
    ``verdict`` is ``stable``, ``noisy`` or ``too few rounds``; ``why`` says why a row
    is not stable.
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
    interval: tuple[float, float] = (0.0, 0.0)
    half_width: float = 0.0
    sigma: float = 0.0
    sigma_floor: float = 0.0

    @property
    def stable(self) -> bool:
        return self.verdict == STABLE

    def to_json(self) -> dict:
        """The JSON ``paired`` entry of the row."""
        return {"mechanism": self.mechanism, "size": self.size, "rounds": self.rounds,
                "ratio_median": round(self.ratio_median, 4), "ratio_min": round(self.ratio_min, 4),
                "ratio_max": round(self.ratio_max, 4), "ratio_q1": round(self.ratio_q1, 4),
                "ratio_q3": round(self.ratio_q3, 4), "ratios": [round(r, 4) for r in self.ratios],
                "host_rtt_ns_median": self.host_ns, "container_rtt_ns_median": self.container_ns,
                "halves": [round(h, 4) for h in self.halves], "verdict": self.verdict, "why": self.why,
                "interval": [round(x, 4) for x in self.interval],
                "interval_pct": round(100 * self.half_width, 2), "spread_pct": round(100 * self.sigma, 2),
                "spread_floor_pct": round(100 * self.sigma_floor, 2)}

    def spread(self) -> str:
        """``0.98 (IQR 0.95-1.02, range 0.90-1.10)``."""
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


def spread(ratios: Sequence[float]) -> float:
    """The rounds' scatter as a log-scale standard deviation, from the median absolute
    deviation of ``ln(ratio)`` (x 1.4826). 0.0 under two ratios; ValueError on a
    non-positive ratio."""
    if any(r <= 0 for r in ratios):
        raise ValueError("ratios must be positive")
    if len(ratios) < 2:
        return 0.0
    logs = [math.log(r) for r in ratios]
    mid = statistics.median(logs)
    return MAD_TO_SIGMA * statistics.median(abs(x - mid) for x in logs)


def typical_spread(rows: Iterable[Sequence[float]]) -> float:
    """The run's typical spread: the median of ``spread`` over the rows with at least
    MIN_ROUNDS_FOR_VERDICT positive ratios; 0.0 when there is none."""
    spreads = [spread(r) for r in rows if len(r) >= MIN_ROUNDS_FOR_VERDICT and all(x > 0 for x in r)]
    return statistics.median(spreads) if spreads else 0.0


def half_width(rounds: int, sigma: float) -> float:
    """The interval's half-width (share, log scale) after ``rounds`` rounds of scatter
    ``sigma``: sqrt((Z x sqrt(pi/2) x sigma / sqrt(rounds))^2 + BETWEEN_RUNS^2)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    se = MEDIAN_SE * sigma / math.sqrt(rounds)
    return math.hypot(Z * se, BETWEEN_RUNS)


def assess(ratios: Sequence[float], floor: float = 0.0, max_rounds: int | None = None) -> Assessment:
    """Where a row stands after ``len(ratios)`` rounds (in the order they ran), its
    spread taken at least ``floor`` (the run's ``typical_spread``):

    - ``stable``: interval half-width <= TARGET and halves within HALF_AGREEMENT;
    - ``open``: not stable, and at this spread ``max_rounds`` rounds could bring the
      half-width within TARGET (None: no bound);
    - ``noisy``: not stable and not open (``max_rounds`` reached, or too far off);
    - ``too few rounds``: under MIN_ROUNDS_FOR_VERDICT ratios.
    """
    n = len(ratios)
    if n < MIN_ROUNDS_FOR_VERDICT:
        return Assessment(TOO_FEW, f"{n} round(s); {MIN_ROUNDS_FOR_VERDICT} needed", 0.0, 0.0, floor)
    if any(r <= 0 for r in ratios):
        return Assessment(NOISY, "non-positive ratio", math.inf, 0.0, floor)
    own = spread(ratios)
    sigma = max(own, floor)
    h = half_width(n, sigma)
    med = statistics.median(ratios)
    width = f"interval {med * math.exp(-h):.2f}-{med * math.exp(h):.2f} (+-{100 * h:.1f} %) after {n} rounds"
    a, b = halves(ratios)
    diff = abs(a - b) / max(a, b)
    if h <= TARGET and diff <= HALF_AGREEMENT:
        return Assessment(STABLE, "", h, own, floor)
    why = "; ".join(
        ([f"{width} wider than +-{100 * TARGET:.0f} %"] if h > TARGET else [])
        + ([f"halves of the run disagree: {a:.2f} vs {b:.2f} ({100 * diff:.1f} % > {100 * HALF_AGREEMENT:.0f} %)"]
           if diff > HALF_AGREEMENT else []))
    if h <= TARGET:
        why += f"; {width}"
    hopeless = max_rounds is not None and half_width(max(n, max_rounds), sigma) > TARGET
    if max_rounds is not None and n >= max_rounds:
        return Assessment(NOISY, f"{why}; --max-rounds {max_rounds} reached", h, own, floor)
    if hopeless:
        return Assessment(NOISY, f"{why}; at this spread even {max_rounds} rounds would not bring it "
                                 f"within +-{100 * TARGET:.0f} %", h, own, floor)
    return Assessment(OPEN, why, h, own, floor)


def rounds_needed(sigma: float) -> int:
    """The fewest rounds whose interval half-width (``half_width``) is within TARGET at
    scatter ``sigma`` (at least MIN_ROUNDS_FOR_VERDICT)."""
    room = TARGET ** 2 - BETWEEN_RUNS ** 2
    n = max(MIN_ROUNDS_FOR_VERDICT, math.ceil((Z * MEDIAN_SE * sigma) ** 2 / room - 1e-9))
    while half_width(n, sigma) > TARGET:  # guard against rounding
        n += 1
    return n


def plan_round(rows: Mapping[K, Sequence[float]], max_rounds: int, cost_s: Mapping[K, float] | None = None,
               remaining_s: float | None = None) -> list[K]:
    """The rows to measure in the next extra round. ``rows``: per-round ratios of every
    row of the run, in time order (the run's typical spread is taken over all of them);
    ``cost_s``: seconds one round of a row takes; ``remaining_s``: seconds left for
    extra rounds (None, or no costs: no time bound).

    Candidates are the ``open`` rows (``assess``). Without a time bound, all of them.
    With one, the rows needing the fewest further rounds first (then the cheapest):
    the largest such set whose rounds, all taken round-major, fit the time left, i.e.
    ``most rounds needed in the set x seconds of one round of the set <= remaining_s``.
    Rows left out stay undecided now and are reconsidered next round (the estimates
    move); rows still open when the extra rounds end are noisy (``judge``)."""
    floor = typical_spread(rows.values())
    cands: list[tuple[int, float, int, K]] = []
    for i, (k, r) in enumerate(rows.items()):
        a = assess(r, floor, max_rounds)
        if a.verdict != OPEN:
            continue
        need = max(1, rounds_needed(max(a.spread, floor)) - len(r))
        cands.append((need, (cost_s or {}).get(k, 0.0), i, k))
    if remaining_s is None or cost_s is None:
        return [k for *_, k in cands]
    cands.sort(key=lambda c: c[:3])
    chosen: list[K] = []
    total = 0.0
    for need, cost, _i, k in cands:
        if need * (total + cost) > remaining_s:
            break
        chosen.append(k)
        total += cost
    return chosen


def judge(ratios: Sequence[float], floor: float = 0.0, max_rounds: int | None = None,
          ended: str = ENDED_DECIDED) -> tuple[str, str]:
    """``(verdict, why)`` of a finished row: ``assess``, with a row still open when the
    extra rounds ended (``ended``: the time ran out, or no bound) called ``noisy``."""
    return _finished(assess(ratios, floor, max_rounds), ended)


def _finished(a: Assessment, ended: str) -> tuple[str, str]:
    """``(verdict, why)`` of assessment ``a`` once no more rounds come: open is noisy."""
    if a.verdict != OPEN:
        return a.verdict, a.why
    reason = "the time for extra rounds ran out" if ended == ENDED_TIME else "no more rounds were taken"
    return NOISY, f"{a.why}; {reason}"


def verdict(ratios: Sequence[float], floor: float = 0.0) -> str:
    """The verdict of ``judge`` alone."""
    return judge(ratios, floor)[0]


def pair_rounds(host: Sequence[Record], container: Sequence[Record], floor: float | None = None,
                max_rounds: int | None = None, ended: str = ENDED_DECIDED) -> Paired:
    """The Paired row of one mechanism and size from its rounds, in round order:
    ``host[i]`` and ``container[i]`` were measured back to back. ``floor``: the run's
    typical spread (None: this row's own, i.e. no floor). Raises ValueError when the
    lists differ in length, are empty, or mix mechanisms or sizes."""
    if not host or len(host) != len(container):
        raise ValueError(f"need as many host as container rounds (got {len(host)} and {len(container)})")
    keys = {(r.mechanism, r.size) for r in (*host, *container)}
    if len(keys) != 1:
        raise ValueError(f"rounds of different rows: {sorted(keys)}")
    (mechanism, size), = keys
    ratios = ratios_of(host, container)
    if not ratios:
        raise ValueError("no host round with a positive median")
    q1, med, q3 = quartiles(ratios)
    a = assess(ratios, floor or 0.0, max_rounds)
    verdict_, why = _finished(a, ended)
    h = a.half_width
    interval = (med * math.exp(-h), med * math.exp(h)) if math.isfinite(h) and h > 0 else (med, med)
    return Paired(mechanism, size, len(ratios), ratios, med, min(ratios), max(ratios), q1, q3,
                  int(statistics.median(r.rtt_ns_median for r in host)),
                  int(statistics.median(r.rtt_ns_median for r in container)),
                  verdict_, halves(ratios) if len(ratios) >= 2 else (med, med), why,
                  interval, h, a.spread, a.floor)


def ratios_of(host: Sequence[Record], container: Sequence[Record]) -> tuple[float, ...]:
    """Per-round ``container / host`` medians of rounds paired by position; a round with
    a non-positive median on either side is left out."""
    return tuple(c.rtt_ns_median / h.rtt_ns_median for h, c in zip(host, container)
                 if h.rtt_ns_median > 0 and c.rtt_ns_median > 0)


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
