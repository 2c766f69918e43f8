"""``labctl bench``: ping-pong round trips between two processes, natively on the host
and in two containers, in the same run, for every IPC mechanism and message size.

``model`` holds the data and the JSON contract, ``pairs`` runs one pair, ``chart``
draws the PNG. This module orders the run (host and container interleaved, so slow
drift of the machine hits both alike), owns the cleanup (a ``finally`` that removes
every labelled object of the run and kills host processes, also on Ctrl-C/SIGTERM)
and renders the output: data on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from labctl.images import platforms
from labctl.bench import conditions
from labctl.bench.records import (MEMCPY_SIZE, Config, Record, Report, parse_config, placement_platform,
                                record_from_event,
                                render_table, to_json)
from labctl.bench import rounds as rounds_mod
from labctl.bench.rounds import Paired, combine, pair_rounds
from labctl.bench.launch import ContainerPairs, HostPairs, PairError, PairSpec
from labctl.errors import EXIT_FAILED, EXIT_OK, EngineError, Interrupted, LabctlError, UsageError
from labctl.runtime.engine import Engine

__all__ = ["main", "run_bench", "host_binary"]

Progress = Callable[[str], None]


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def host_binary(engine: Engine) -> Path:
    """The compiled ``shmlab`` of the current sources from the build cache (compiled if
    missing). It is static, so it runs on this host when the host's architecture is
    the engine's; raises EngineError otherwise."""
    from labctl.images import build

    arch = engine.architecture()
    if build.host_arch() != arch:
        raise EngineError(f"host pairs need a {arch} host (the engine's architecture); this host is "
                          f"{build.host_arch()}. Use --placements container.")
    tc = build.toolchain(arch)
    src = build.source_dir()
    return build.compile_binary(src, tc, build.content_hash(src, tc))


def _memcpy(binary: Path, config: Config) -> Record:
    import subprocess

    iters = max(200, config.iterations // 20)
    argv = [str(binary), "bench", "--role", "memcpy", "--size", str(MEMCPY_SIZE), "--iters", str(iters),
            "--warmup", str(max(10, iters // 10)), "--timeout", str(int(config.timeout_s * 1000))]
    if config.pin:
        argv += ["--pin", "1"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=config.timeout_s + 10)
    except subprocess.TimeoutExpired as e:
        raise PairError("memcpy reference: no answer before its deadline") from e
    for line in proc.stdout.splitlines():
        if '"event":"result"' in line:
            try:
                return record_from_event(json.loads(line), "host")
            except ValueError as e:
                raise PairError(f"memcpy reference: {e}") from e
    raise PairError(f"memcpy reference failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-400:]}")


def run_bench(engine, image: str, binary: Path | None, config: Config,  # noqa: ANN001
              progress: Progress = _say, run_id: str | None = None,
              platform_images: dict[str, str] | None = None) -> Report:
    """Measure every mechanism x size x placement of ``config``; never leaves a labelled
    object or a host process behind, whatever happens (the ``finally``). Pair failures
    are collected in ``Report.errors``; engine failures and interrupts propagate.
    ``platform_images``: the image of each ``container-<suffix>`` placement in ``config``
    (native platforms only: see ``refuse_emulated``)."""
    from labctl.images.build import cache_dir

    run_id = run_id or str(uuid.uuid4())
    machine = conditions.this_machine()
    pinned = config.pin and (machine.cores >= 2)
    if config.pin and not pinned:
        progress("one core only: running unpinned")
    cfg = dataclasses.replace(config, pin=pinned)
    start = conditions.snapshot()
    memcpy: list[Record] = []
    rounds: list[Record] = []
    errors: list[str] = []
    containers = ContainerPairs(engine, image, run_id)
    others = {pl: ContainerPairs(engine, ref, run_id, placement=pl, platform=_platform_name(pl))
              for pl, ref in (platform_images or {}).items()}
    hosts: HostPairs | None = None
    plan = [(m, s) for m in cfg.mechanisms for s in cfg.sizes]
    # the rounds of each row whose host and container pair both succeeded, in time order
    matched: dict[tuple[str, int], tuple[list[Record], list[Record]]] = {row: ([], []) for row in plan}
    seconds: dict[tuple[str, int], list[float]] = {row: [] for row in plan}  # wall time of each round of a row
    paired_placements = "host" in cfg.placements and "container" in cfg.placements  # rounds to pair, rows to extend
    total = len(plan) * len(cfg.placements) * cfg.rounds
    done = 0
    ended = rounds_mod.ENDED_DECIDED
    extra: dict = {}
    try:
        if "host" in cfg.placements:
            if binary is None:
                raise LabctlError("host pairs need the shmlab binary")
            gateway = containers.gateway() if "tcp-bridge" in cfg.mechanisms else None
            hosts = HostPairs(binary, run_id, gateway, cache_dir().parent / "bench")
            if cfg.memcpy:
                progress("memcpy reference (1 MiB, one core)")
                try:
                    memcpy.append(_memcpy(binary, cfg))
                except PairError as e:
                    errors.append(str(e))
        # Round-major: round 1 of every row, then round 2 of every row..., the rows and
        # the placement order shuffled within each round. One row's rounds are then spread
        # over the whole run, so their spread estimates what a second run would see
        # (labctl.bench.rounds), and neither placement always goes first. After the
        # minimum rounds, extra rounds take only the rows labctl.bench.rounds.plan_round
        # picks (not yet decided, and able to finish in the time left).
        shuffle = random.Random(run_id).shuffle
        t_start = time.monotonic()
        deadline: float | None = None
        t_min_end = t_start
        todo = list(plan)
        r = 0
        while todo:
            r += 1
            in_extra = r > cfg.rounds
            order_rows = list(todo)
            shuffle(order_rows)
            for mech, size in order_rows:
                if deadline is not None and time.monotonic() >= deadline:
                    ended = rounds_mod.ENDED_TIME
                    break
                spec = PairSpec(mech, size, cfg.iterations_for(size), cfg.warmup_for(size), cfg.timeout_s, pinned)
                order = list(cfg.placements)
                shuffle(order)
                where = f"round {r} (extra, up to {cfg.max_rounds})" if in_extra else f"round {r}/{cfg.rounds}"
                t_row = time.monotonic()
                got: dict[str, Record] = {}
                for placement in order:
                    done += 1
                    progress(f"[{done}/{total}] {mech} {size} B {placement} {where} ({spec.iterations} round trips)")
                    runner = hosts if placement == "host" else others.get(placement, containers)
                    assert runner is not None
                    try:
                        got[placement] = runner.run(spec)
                    except PairError as e:
                        errors.append(f"{e} (round {r})")
                        progress(f"  failed: {e}")
                        continue
                    rounds.append(got[placement])
                    # The round's first pair picked its batch from its warm-up; the partner
                    # times batches of that size, so the round's ratio compares one statistic
                    # (the median of k-round-trip means) in both placements.
                    spec = dataclasses.replace(spec, batch=spec.batch or got[placement].batch)
                seconds[(mech, size)].append(time.monotonic() - t_row)
                if "host" in got and "container" in got:
                    matched[(mech, size)][0].append(got["host"])
                    matched[(mech, size)][1].append(got["container"])
            if ended == rounds_mod.ENDED_TIME:
                break
            if r < cfg.rounds:
                continue
            now = time.monotonic()
            if r == cfg.rounds:
                budget = (now - t_start) if cfg.extra_time_s is None else cfg.extra_time_s
                t_min_end, deadline = now, now + budget
                extra = {"min_rounds_s": round(now - t_start, 1), "extra_time_s": round(budget, 1)}
            if not paired_placements:
                break
            ratios = {row: rounds_mod.ratios_of(*hc) for row, hc in matched.items()}
            if r >= cfg.max_rounds:  # the rows of this last round may not be decided: they hit the bound
                ended = rounds_mod.ENDED_MAX_ROUNDS
                break
            assert deadline is not None
            cost = {row: statistics.fmean(ts) for row, ts in seconds.items() if ts}
            todo = rounds_mod.plan_round(ratios, cfg.max_rounds, cost, deadline - now)
            if not todo and rounds_mod.plan_round(ratios, cfg.max_rounds):
                ended = rounds_mod.ENDED_TIME  # rows still open, none able to finish in the time left
            total = done + len(todo) * len(cfg.placements)
            if todo:
                progress(f"round {r + 1}: {len(todo)} of {len(plan)} rows not yet decided get another round "
                         f"({deadline - now:.0f} s left for extra rounds)")
        if extra:
            extra.update(rounds_run=r, ended=ended,
                         extra_time_used_s=round(time.monotonic() - t_min_end, 1))
    finally:
        if hosts is not None:
            hosts.close()
        _removed, problems = containers.close()
        for p in problems:
            progress(f"could not remove {p} (`labctl clean` will)")
    records, paired = summarize_rounds(cfg, rounds, matched if paired_placements else None, ended)
    if extra and paired:
        extra["spread_floor_pct"] = round(100 * paired[0].sigma_floor, 2)
    return Report(machine, cfg, (*memcpy, *records), (0, 1) if pinned else (), tuple(errors),
                  rounds=tuple(rounds), paired=tuple(paired),
                  conditions=conditions.summary(start, conditions.snapshot()),
                  adaptive={"min_rounds": cfg.rounds, "max_rounds": cfg.max_rounds, **extra} if extra else {})


def _platform_name(placement: str) -> str | None:
    plat = placement_platform(placement)
    return plat.name if plat is not None else None


def refuse_emulated(placements: tuple[str, ...], engine_arch: str) -> None:
    """UsageError (exit 2, nothing started) for a ``container-<suffix>`` placement whose
    platform this engine only emulates: qemu translates every load, store and syscall,
    so its round trips time the emulator, not the IPC mechanism."""
    for placement in placements:
        plat = placement_platform(placement)
        if plat is not None and not platforms.is_native(plat, engine_arch):
            raise UsageError(
                f"placement {placement} refused: {plat.name} does not run natively on this {engine_arch} engine, "
                f"only under qemu emulation, whose timings measure the emulator rather than the IPC. "
                f"Run it on a machine whose CPU runs {plat.name} code "
                f"({', '.join(sorted(plat.native_on)) or 'an arm64 or armv7 machine with AArch32'}).")


def summarize_rounds(cfg: Config, rounds: list[Record],
                     matched: dict[tuple[str, int], tuple[list[Record], list[Record]]] | None = None,
                     ended: str = rounds_mod.ENDED_DECIDED) -> tuple[list[Record], list[Paired]]:
    """One Record per mechanism, size and placement (medians over its rounds) and one
    Paired row per mechanism and size where both placements have rounds, judged against
    the run's typical spread (``rounds.typical_spread`` over all paired rows) and
    ``cfg.max_rounds``; ``ended``: why the extra rounds ended (``rounds.ENDED_*``).
    ``matched``: per row, the host and container records of the rounds where both
    succeeded (run_bench knows them); without it, a row's rounds pair by position and a
    row with a failed round is left unpaired (never compared with another round's)."""
    records: list[Record] = []
    pairs: dict[tuple[str, int], tuple[list[Record], list[Record]]] = {}
    for mech in cfg.mechanisms:
        for size in cfg.sizes:
            by_place = {pl: [r for r in rounds if (r.mechanism, r.size, r.placement) == (mech, size, pl)]
                        for pl in cfg.placements}
            records.extend(combine(rs) for rs in by_place.values() if rs)
            if matched is not None:
                host, ctr = matched.get((mech, size), ([], []))
            else:
                host, ctr = by_place.get("host", []), by_place.get("container", [])
            if host and ctr and len(host) == len(ctr) and rounds_mod.ratios_of(host, ctr):
                pairs[(mech, size)] = (host, ctr)
    floor = rounds_mod.typical_spread(rounds_mod.ratios_of(h, c) for h, c in pairs.values())
    paired = [pair_rounds(h, c, floor, cfg.max_rounds, ended) for h, c in pairs.values()]
    return records, paired


def main(args: argparse.Namespace) -> int:
    """``labctl bench`` from parsed arguments; returns the exit code (1 if a pair failed)."""
    from labctl.images import build
    from labctl.bench.chart import require_matplotlib, write_chart
    config = parse_config(args.mechanisms or "", args.sizes or "", getattr(args, "placements", "") or "",
                          int(args.iterations), not getattr(args, "no_pin", False),
                          float(getattr(args, "timeout", 20.0) or 20.0), int(getattr(args, "rounds", 5) or 5),
                          getattr(args, "max_rounds", None), getattr(args, "extra_time", None))
    if args.chart:
        require_matplotlib()
    quiet = getattr(args, "quiet", False)
    progress: Progress = (lambda _m: None) if quiet else _say
    engine = Engine.connect(getattr(args, "engine", None))
    refuse_emulated(config.placements, engine.architecture())
    image = build.ensure_image(engine, progress=progress).image
    platform_images = {pl: build.ensure_image(engine, platform=plat, progress=progress).image
                       for pl in config.placements if (plat := placement_platform(pl)) is not None}
    binary = host_binary(engine) if "host" in config.placements else None

    def on_signal(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = run_bench(engine, image, binary, config, progress, platform_images=platform_images)
    finally:
        for s, h in old.items():
            signal.signal(s, h)  # type: ignore[arg-type]
    if args.format == "json":
        sys.stdout.write(json.dumps(to_json(report), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(report))
    sys.stdout.flush()
    if args.chart:
        progress(f"wrote {write_chart(report, args.chart)}")
    return EXIT_FAILED if report.errors else EXIT_OK
