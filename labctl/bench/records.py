"""The benchmark's data: plan, records, statistics, the JSON contract, targets, the table.

Pure Python (no engine, no subprocess), so all of it unit-tests with fake samples.
The ``shmlab bench`` client computes its own statistics over its per-iteration
timestamps; ``summarize`` here uses the same definitions (median of the middle
pair, nearest-rank p99) for Python-side measurements such as the suite-speed script.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from labctl.bench.conditions import Machine
from labctl.images import platforms
from labctl.images.platforms import Platform
from labctl import units
from labctl.errors import UsageError

MECHANISMS = (
    "sysv-shm-spin", "sysv-shm-futex", "mmap-tmpfs", "mmap-disk", "posix-shm",
    "fifo", "unix-socket", "tcp-shared-netns", "tcp-bridge",
)
PLACEMENTS = ("host", "container")
# Containers of another platform than the engine's own (container-arm64, container-386...):
# only where that platform runs natively (labctl.bench.main refuses emulated ones).
PLATFORM_PLACEMENTS = tuple(f"container-{p.suffix}" for p in platforms.PLATFORMS)


def placement_platform(placement: str) -> Platform | None:
    """The platform of a ``container-<suffix>`` placement; None for host and container."""
    return next((p for p in platforms.PLATFORMS if placement == f"container-{p.suffix}"), None)
DEFAULT_SIZES = (64, 4096, 65536, 1048576)
MEMCPY_SIZE = 1048576
MAX_SIZE = 64 * 1024 * 1024
MIN_ITERATIONS = 200
# Paired rounds per row: at least DEFAULT_ROUNDS; rows not yet decided get more, up to
# DEFAULT_MAX_ROUNDS, while the time for extra rounds lasts (labctl.bench.rounds).
DEFAULT_ROUNDS = 5
DEFAULT_MAX_ROUNDS = 20
MAX_ROUNDS = 99


@dataclass(frozen=True)
class Stats:
    """Order statistics of a list of durations in nanoseconds."""

    n: int
    median: int
    p99: int
    minimum: int
    maximum: int
    mean: int


def percentile(sorted_ns: Sequence[int], q: float) -> int:
    """Nearest-rank percentile ``q`` (0 < q <= 100) of an ascending list: the smallest
    sample with at least q % of the samples at or below it."""
    if not sorted_ns:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_ns)))
    return int(sorted_ns[min(rank, len(sorted_ns)) - 1])


def summarize(samples_ns: Iterable[int]) -> Stats:
    """Median (mean of the middle two for an even count), nearest-rank p99, min, max, mean."""
    s = sorted(int(x) for x in samples_ns)
    if not s:
        raise ValueError("no samples")
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
    return Stats(n, median, percentile(s, 99), s[0], s[-1], sum(s) // n)


@dataclass(frozen=True)
class Config:
    """What one ``labctl bench`` run measures."""

    mechanisms: tuple[str, ...] = MECHANISMS
    sizes: tuple[int, ...] = DEFAULT_SIZES
    placements: tuple[str, ...] = PLACEMENTS
    iterations: int = 20000
    pin: bool = True
    timeout_s: float = 20.0
    memcpy: bool = True
    rounds: int = DEFAULT_ROUNDS  # the minimum: every row gets these
    max_rounds: int = DEFAULT_MAX_ROUNDS  # at most, for rows whose verdict is still open
    extra_time_s: float | None = None  # seconds for extra rounds; None: as long as the first ``rounds`` took

    def iterations_for(self, size: int) -> int:
        """Fewer round trips for big messages (a 1 MiB round trip costs ~1000x a 64 B
        one), never below MIN_ITERATIONS nor above ``iterations``."""
        scaled = self.iterations * 4096 // max(size, 4096)
        return max(min(self.iterations, MIN_ITERATIONS), min(self.iterations, scaled), 1)

    def warmup_for(self, size: int) -> int:
        """A tenth of the measured round trips, at least 10: caches, page faults, TCP windows."""
        return max(10, self.iterations_for(size) // 10)


def parse_config(mechanisms: str, sizes: str, placements: str, iterations: int, pin: bool,
                 timeout_s: float, rounds: int = DEFAULT_ROUNDS, max_rounds: int | None = None,
                 extra_time_s: float | None = None) -> Config:
    """Build a Config from command-line strings; raises UsageError naming the bad value.
    ``max_rounds`` None: DEFAULT_MAX_ROUNDS, or ``rounds`` when that is more;
    ``extra_time_s`` None: as long as the minimum rounds took, 0: no extra rounds."""
    mechs = tuple(m.strip() for m in mechanisms.split(",") if m.strip()) or MECHANISMS
    unknown = [m for m in mechs if m not in MECHANISMS]
    if unknown:
        raise UsageError(f"unknown mechanism {unknown[0]!r} (expected some of: {', '.join(MECHANISMS)})")
    places = tuple(p.strip() for p in placements.split(",") if p.strip()) or PLACEMENTS
    bad = [p for p in places if p not in PLACEMENTS + PLATFORM_PLACEMENTS]
    if bad:
        raise UsageError(f"unknown placement {bad[0]!r} (expected host, container or both, or a container of "
                         f"another platform: {', '.join(PLATFORM_PLACEMENTS)})")
    size_list: list[int] = []
    for text in (x.strip() for x in sizes.split(",")):
        if not text:
            continue
        size_list.append(parse_size(text))
    if not size_list:
        raise UsageError("--sizes needs at least one size")
    if iterations < 1:
        raise UsageError("--iterations must be at least 1")
    if timeout_s <= 0:
        raise UsageError("--timeout must be positive")
    if not 1 <= rounds <= MAX_ROUNDS:
        raise UsageError(f"--rounds must be between 1 and {MAX_ROUNDS}")
    if max_rounds is None:
        max_rounds = max(rounds, DEFAULT_MAX_ROUNDS)
    if not rounds <= max_rounds <= MAX_ROUNDS:
        raise UsageError(f"--max-rounds must be between --rounds ({rounds}) and {MAX_ROUNDS}")
    if extra_time_s is not None and not (extra_time_s >= 0 and math.isfinite(extra_time_s)):
        raise UsageError("--extra-time must be 0 or more seconds")
    return Config(tuple(dict.fromkeys(mechs)), tuple(dict.fromkeys(size_list)), tuple(dict.fromkeys(places)),
                  iterations, pin, timeout_s, rounds=rounds, max_rounds=max_rounds, extra_time_s=extra_time_s)


def parse_size(text: str) -> int:
    """``64``, ``4k``, ``1m`` (KiB/MiB; the size grammar of ``labctl.units``) to bytes;
    raises UsageError."""
    try:
        value = units.parse_size(text)
    except ValueError:
        raise UsageError(f"bad size {text!r} (bytes, or with k / m suffix)") from None
    if not 1 <= value <= MAX_SIZE:
        raise UsageError(f"size {text!r} out of range (1 B to 64 MiB)")
    return value


@dataclass(frozen=True)
class Record:
    """One measured pair: the JSON ``results`` entry."""

    mechanism: str
    placement: str
    size: int
    rtt_ns_median: int
    rtt_ns_p99: int
    msgs_per_s: int
    bytes_per_s: int
    iterations: int = 0
    rtt_ns_min: int = 0
    rtt_ns_mean: int = 0
    pinned: bool = False
    complete: bool = True
    msgs_per_s_sustained: int = 0
    bytes_per_s_sustained: int = 0
    batch: int = 1  # round trips timed together per sample
    clock_tick_ns: int = 0  # smallest step of the client's clock
    rounds: int = 1  # paired rounds this record stands for (their medians)


def record_from_event(event: dict, placement: str) -> Record:
    """A Record from the client's ``result`` event (``shmlab bench``); raises ValueError
    when a field is missing or of the wrong type."""
    try:
        return Record(
            mechanism=str(event["mechanism"]), placement=placement, size=int(event["size"]),
            rtt_ns_median=int(event["rtt_ns_median"]), rtt_ns_p99=int(event["rtt_ns_p99"]),
            msgs_per_s=int(event["msgs_per_s"]), bytes_per_s=int(event["bytes_per_s"]),
            iterations=int(event.get("iterations", 0)), rtt_ns_min=int(event.get("rtt_ns_min", 0)),
            rtt_ns_mean=int(event.get("rtt_ns_mean", 0)), pinned=bool(event.get("pinned", False)),
            complete=bool(event.get("complete", True)),
            msgs_per_s_sustained=int(event.get("msgs_per_s_sustained", 0)),
            bytes_per_s_sustained=int(event.get("bytes_per_s_sustained", 0)),
            batch=int(event.get("batch", 1)), clock_tick_ns=int(event.get("clock_tick_ns", 0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed result event {event!r}: {e}") from e


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, evaluated on a run's records."""

    name: str
    value: float | None
    limit: float
    comparison: str  # "<=" or ">="
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.comparison == "<=" else self.value >= self.limit


@dataclass(frozen=True)
class Report:
    """A whole run: machine, settings, records and the targets they meet or miss."""

    machine: Machine
    config: Config
    records: tuple[Record, ...]
    pinned_cpus: tuple[int, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)
    rounds: tuple[Record, ...] = ()  # every round's record; ``records`` holds their medians
    paired: tuple = ()  # labctl.bench.rounds.Paired rows (typed loosely: that module imports this one)
    conditions: dict = field(default_factory=dict)  # load and steal at start and end
    adaptive: dict = field(default_factory=dict)  # the extra rounds: how many, how long, why they ended

    def find(self, mechanism: str, placement: str, size: int) -> Record | None:
        for r in self.records:
            if (r.mechanism, r.placement, r.size) == (mechanism, placement, size):
                return r
        return None

    def pair(self, mechanism: str, size: int):  # noqa: ANN201 - Paired | None (see the field)
        """The paired-rounds row of ``mechanism`` and ``size``, if both placements ran."""
        for p in self.paired:
            if (p.mechanism, p.size) == (mechanism, size):
                return p
        return None

    def ratio(self, mechanism: str, size: int) -> float | None:
        """container/host: the median of the per-round ratios when rounds were paired,
        else the ratio of the two records' medians; None where a placement is missing."""
        p = self.pair(mechanism, size)
        if p is not None:
            return float(p.ratio_median)
        h, c = self.find(mechanism, "host", size), self.find(mechanism, "container", size)
        return c.rtt_ns_median / h.rtt_ns_median if h and c and h.rtt_ns_median else None

    def targets(self) -> list[Target]:
        """The issue's targets, as ratios measured in this run (None where not measured)."""
        out: list[Target] = []
        for size in (64, 4096):
            p = self.pair("sysv-shm-spin", size)
            detail = "" if p is None or p.stable else f"machine too noisy for this row ({p.spread()})"
            out.append(Target(f"sysv-shm-spin container/host median at {size} B", self.ratio("sysv-shm-spin", size),
                              1.05, "<=", detail))
        spin = self.find("sysv-shm-spin", "container", 64)
        for other, limit in (("tcp-shared-netns", 20.0), ("tcp-bridge", 20.0), ("unix-socket", 10.0)):
            o = self.find(other, "container", 64)
            ratio = o.rtt_ns_median / spin.rtt_ns_median if o and spin and spin.rtt_ns_median else None
            out.append(Target(f"{other} / sysv-shm-spin median at 64 B (containers)", ratio, limit, ">="))
        mem = self.find("memcpy", "host", MEMCPY_SIZE)
        for placement in ("host", "container"):
            s = self.find("sysv-shm-spin", placement, MEMCPY_SIZE)
            ratio = s.bytes_per_s / mem.bytes_per_s if s and mem and mem.bytes_per_s else None
            out.append(Target(f"sysv-shm-spin 1 MiB throughput / memcpy ({placement})", ratio, 0.5, ">=",
                              "bytes_per_s counts both directions"))
        return out


def to_json(report: Report) -> dict:
    """The ``labctl bench --format json`` document (its documented fields, see docs/benchmarks.md, plus extras)."""
    pinned = bool(report.pinned_cpus)
    return {
        "machine": asdict(report.machine),
        "pinned": pinned,
        "pinned_cpus": {"server": report.pinned_cpus[0], "client": report.pinned_cpus[1]} if pinned else None,
        "config": {
            "mechanisms": list(report.config.mechanisms), "sizes": list(report.config.sizes),
            "placements": list(report.config.placements), "iterations": report.config.iterations,
            "timeout_s": report.config.timeout_s, "rounds": report.config.rounds,
            "max_rounds": report.config.max_rounds, "extra_time_s": report.config.extra_time_s,
        },
        "conditions": report.conditions,
        "adaptive": report.adaptive,
        "units": {"rtt": "ns per round trip (size bytes each way)",
                  "msgs_per_s": "round trips per second at the median round trip (1e9 / rtt_ns_median)",
                  "bytes_per_s": "payload bytes per second both ways at the median (2 x size x msgs_per_s); "
                                 "memcpy: bytes copied per second",
                  "*_sustained": "the same over the whole timed loop, stalls included",
                  "results": "per placement, the median over the paired rounds of each round's figure",
                  "batch": "round trips timed together per sample (one clock tick <= 1 % of a sample)",
                  "paired": "per round container/host ratio of medians, rounds round-major and shuffled, at least "
                            "config.rounds a row, more for rows not yet decided (docs/benchmarks.md); stable when "
                            "the interval is within +-5 % (interval_pct <= 5) and the halves agree within 5 %"},
        "results": [asdict(r) for r in report.records],
        "rounds": [asdict(r) for r in report.rounds],
        "paired": [p.to_json() for p in report.paired],
        "targets": [{"name": t.name, "value": None if t.value is None else round(t.value, 3),
                     "limit": t.limit, "comparison": t.comparison, "met": t.met, "detail": t.detail}
                    for t in report.targets()],
        "errors": list(report.errors),
    }


# ==== text table ====


def human_ns(ns: float) -> str:
    """``850 ns``, ``12.3 us``, ``4.56 ms``."""
    if ns < 1000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1000:.1f} us"
    return f"{ns / 1e6:.2f} ms"


def human_bytes(b: float) -> str:
    """Bytes per second in powers of 1024 (``1.2 GiB/s``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.1f} {unit}/s" if unit != "B" else f"{b:.0f} B/s"
        b /= 1024
    return f"{b:.1f} GiB/s"


def human_size(size: int) -> str:
    if size >= 1048576 and size % 1048576 == 0:
        return f"{size // 1048576} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def render_table(report: Report) -> str:
    """One row per mechanism and size, host and container side by side, then the targets."""
    head = ("mechanism", "size", "host med", "host p99", "ctr med", "ctr p99", "ctr/host [IQR]", "interval (rounds)",
            "ctr msgs/s", "ctr bytes/s")
    rows: list[tuple[str, ...]] = [head]
    for mech in report.config.mechanisms:
        for size in report.config.sizes:
            h, c = report.find(mech, "host", size), report.find(mech, "container", size)
            if h is None and c is None:
                continue
            r, p = report.ratio(mech, size), report.pair(mech, size)
            ratio = "-" if r is None else f"{r:.2f}"
            interval = "-"
            if p is not None and p.rounds > 1:
                ratio += f" [{p.ratio_q1:.2f}-{p.ratio_q3:.2f}]" + ("" if p.stable else f" {p.verdict.upper()}")
                if p.half_width > 0:
                    interval = f"+-{100 * p.half_width:.1f} % ({p.rounds})"
            rows.append((mech, human_size(size),
                         human_ns(h.rtt_ns_median) if h else "-", human_ns(h.rtt_ns_p99) if h else "-",
                         human_ns(c.rtt_ns_median) if c else "-", human_ns(c.rtt_ns_p99) if c else "-",
                         ratio, interval, f"{c.msgs_per_s:,}" if c else "-", human_bytes(c.bytes_per_s) if c else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    m = report.machine
    pin = (f"server on CPU {report.pinned_cpus[0]}, client on CPU {report.pinned_cpus[1]}"
           if report.pinned_cpus else "not pinned")
    out = [f"machine: {m.cpu}, {m.cores} cores, kernel {m.kernel}; {pin}"]
    if report.config.rounds > 1:
        cfg, ad = report.config, report.adaptive
        extra = (f"; extra rounds ended: {ad['ended']} after {ad.get('extra_time_used_s', 0):.0f} s "
                 f"of {ad.get('extra_time_s', 0):.0f} s" if ad.get("ended") else "")
        out.append(f"{cfg.rounds} to {cfg.max_rounds} paired rounds per row, more only for rows not yet decided{extra}; "
                   "ctr/host: median of per-round ratios [interquartile range]; interval: where repeated runs' "
                   "medians would fall (about 95 %); NOISY: interval wider than +-5 % or the run's halves 5 % apart")
    ticks = sorted({r.clock_tick_ns for r in report.records if r.clock_tick_ns})
    if ticks:
        batches = sorted({r.batch for r in report.records if r.size == min(report.config.sizes)})
        out.append(f"clock tick {'/'.join(map(str, ticks))} ns; {min(report.config.sizes)} B rows time batches of "
                   f"{'/'.join(map(str, batches))} round trips per sample (one tick <= 1 % of a sample)")
    cond = report.conditions
    if cond:
        out.append("load average " + " -> ".join(f"{cond.get(k, {}).get('loadavg_1m', '?')}" for k in ("start", "end"))
                   + (f"; steal {cond['steal_pct']:.1f} %" if cond.get("steal_pct") is not None else ""))
    out += ["", *lines]
    others = [pl for pl in report.config.placements if placement_platform(pl) is not None]
    for pl in others:
        out += ["", f"{pl} ({placement_platform(pl)}, native on this engine): vs container"]
        for mech in report.config.mechanisms:
            for size in report.config.sizes:
                o, c = report.find(mech, pl, size), report.find(mech, "container", size)
                if o is not None:
                    vs = f" ({o.rtt_ns_median / c.rtt_ns_median:.2f} x container)" if c and c.rtt_ns_median else ""
                    out.append(f"  {mech} {human_size(size)}: median {human_ns(o.rtt_ns_median)}, "
                               f"p99 {human_ns(o.rtt_ns_p99)}, {o.msgs_per_s:,} msgs/s{vs}")
    mem = report.find("memcpy", "host", MEMCPY_SIZE)
    if mem:
        out += ["", f"memcpy 1 MiB (one core): {human_ns(mem.rtt_ns_median)} per copy, {human_bytes(mem.bytes_per_s)}"]
    targets = report.targets()
    if targets:
        out += ["", "targets:"]
        for t in targets:
            verdict = {True: "met", False: "MISSED", None: "not measured"}[t.met]
            value = "-" if t.value is None else f"{t.value:.2f}"
            out.append(f"  {verdict:<12} {t.name}: {value} (target {t.comparison} {t.limit:g})"
                       + (f"; {t.detail}" if t.detail else ""))
    for err in report.errors:
        out.append(f"error: {err}")
    return "\n".join(out) + "\n"
