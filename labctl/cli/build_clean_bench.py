"""Commands that work on the engine outside a scenario run: build, clean, bench."""

from __future__ import annotations

import time
from types import SimpleNamespace

import click

from labctl.cli import common
from labctl.cli.params import LIST_FORMATS, engine, option, output_format, platform_option, quiet
from labctl.errors import EXIT_FAILED, EXIT_OK, UsageError


@click.command("build")
@option("--force", is_flag=True, help="Rebuild even if up to date.")
@option("--self", "self_image", is_flag=True,
        help="Build labctl itself as the image labctl/labctl:<version> (and :latest), for containerized "
             "CI; needs PyInstaller: pip install 'labctl[image]'.")
@platform_option("Build the workload image for this platform instead of the engine's own; repeatable",
                 multiple=True)
@engine
@quiet
@click.pass_context
def build_cmd(ctx: click.Context, force: bool, self_image: bool, platform: tuple[str, ...], engine: str | None,
              quiet: bool) -> int:
    """Compile the workloads and build the images (a no-op when unchanged).

    Prints the image reference (labctl/shmlab:<hash12>, or with --self
    labctl/labctl:<hash12>, also tagged :<version> and :latest) on stdout. Nothing is
    pulled: both images are FROM scratch, built for the engine's architecture unless
    --platform says otherwise: one line per platform, the engine's own without a
    suffix, others ending in -arm64, -386, -armv7 (also tagged :latest-<suffix>).
    Building for a platform the engine can only emulate needs no emulation; running
    it does (see `labctl run --platform`).

    \b
    Examples:
      IMAGE=$(labctl build -q)
      labctl build --self && docker run --rm -v /var/run/docker.sock:/var/run/docker.sock labctl/labctl run
      labctl build --platform linux/arm64 --platform linux/386
    """
    from labctl.images import build
    from labctl.images import platforms

    progress = common.Progress(common.quiet(ctx, quiet))
    eng = common.connect(engine)
    if self_image:
        from labctl.images.selfimage import ensure_self_image

        if platform:
            raise UsageError("--self builds labctl for the engine's own platform; --platform is for the workloads")
        t0 = time.monotonic()
        res = ensure_self_image(eng, force=force, progress=progress.line)
        progress.line(f"{'built' if res.built else 'up to date:'} {res.image} ({time.monotonic() - t0:.2f}s)")
        print(res.image)
        return EXIT_OK
    wanted = [platforms.parse(p) for p in dict.fromkeys(platform)] or [None]
    for plat in wanted:
        t0 = time.monotonic()
        res = (common.ensure_image(eng, progress, force=force) if plat is None
               else build.ensure_image(eng, platform=plat, force=force, progress=progress.line))
        what = f" for {plat.name}" if plat else ""
        progress.line(f"{'built' if res.built else 'up to date:'} {res.image}{what} ({time.monotonic() - t0:.2f}s)")
        print(res.image)
    from labctl.images import examples  # the example programs (images/<name>) build with the workload

    for name in examples.names():
        ex = examples.ensure(eng, name, force=force, progress=progress.line)
        progress.line(f"{'built' if ex.built else 'up to date:'} {ex.image}")
    return EXIT_OK


@click.command("clean")
@option("--stale", is_flag=True, help="Only objects of labctl runs whose process is gone.")
@option("--run", "run_id", default="", metavar="RUN_ID", envvar="LABCTL_RUN",
        help="Only the objects of this run (label io.labctl.run-id; the 8-character form "
             "progress lines show is enough when it names one run).")
@engine
def clean_cmd(stale: bool, run_id: str, engine: str | None) -> int:
    """Remove every object labelled io.labctl.managed=true, from any run (even a crashed one).

    Exit 1 if an object could not be removed.

    \b
    Examples:
      labctl clean                 # everything labctl made
      labctl clean --stale         # only what dead labctl processes left
      labctl clean --run 3f2c...   # one run, e.g. after `run --keep`
      labctl clean --engine podman # containers, pods and volumes on Podman
    """
    from labctl.runtime import clean

    if run_id and stale:  # a usage error is exit 2 whether or not the engine answers
        raise UsageError("--run and --stale cannot be used together")
    eng = common.connect(engine)
    if run_id:
        removed, errors = clean.remove_run(eng, run_id)
    else:
        removed, errors = clean.clean(eng, stale_only=stale)
    for r in removed:
        common.err(f"removed {r}")
    for e in errors:
        common.err(f"labctl: could not remove {e}")
    common.err(f"{len(removed)} object(s) removed")
    return EXIT_FAILED if errors else EXIT_OK


@click.command("bench")
@output_format(LIST_FORMATS)
@option("--sizes", default="64,4096,65536,1048576", show_default=True, metavar="BYTES,...",
        help="Message sizes in bytes.")
@option("--iterations", type=int, default=20000, show_default=True, metavar="N",
        help="Round trips per pair and size.")
@option("--mechanisms", default="", metavar="NAME,...", help="Comma-separated subset (default: all).")
@option("--placements", default="host,container", show_default=True, metavar="WHERE,...",
        help="host, container or both, measured in the same run; container-386, container-arm64... add "
             "containers of another platform, only where it runs natively (emulated timings are refused).")
@option("--chart", default="", metavar="PNG",
        help="Also write a chart (needs matplotlib: pip install 'labctl[bench]').")
@option("--timeout", type=float, default=20.0, show_default=True, metavar="SECONDS",
        help="Deadline of each pair's measurement.")
@option("--rounds", type=int, default=5, show_default=True, metavar="N",
        help="Paired rounds every mechanism and size gets at least: host and container back to back, "
             "the ratio container/host taken per round.")
@option("--max-rounds", type=int, default=None, metavar="N",
        help="Rounds a row may get at most: rows not yet stable nor clearly noisy get extra rounds "
             "until decided [default: 20, or --rounds if more; equal to --rounds: no extra rounds].")
@option("--extra-time", type=float, default=None, metavar="SECONDS",
        help="Time the extra rounds may take in all [default: as long as the first --rounds rounds took, "
             "so a run lasts at most about twice as long; 0: no extra rounds].")
@option("--no-pin", is_flag=True, help="Do not pin the server to CPU 0 and the client to CPU 1.")
@engine
@quiet
@click.pass_context
def bench_cmd(ctx: click.Context, **o) -> int:
    """The IPC benchmark: shared memory against pipes, sockets and TCP, on the host and
    in containers. Exit 1 if a pair failed.

    Each row (mechanism and size) reports container/host as the median of per-round
    ratios and an interval around it: where the median would be expected to land if
    the whole run were repeated many times (about 95 %), from the rounds' scatter
    (never taken below the run's typical scatter) and a 1 % allowance for what differs
    between runs. A row is stable when that interval is within +-5 % and the first and
    second half of its rounds agree within 5 %: two runs calling a row stable should
    then agree within 10 %. Rows not yet decided get extra rounds (--max-rounds,
    --extra-time); a row still wider than +-5 % when a bound is hit is NOISY, and the
    JSON's "why" says which bound.

    \b
    Examples:
      labctl bench --sizes 64 --iterations 2000 --mechanisms sysv-shm-spin,fifo
      labctl bench --format json --chart bench.png > bench.json
    """
    from labctl import bench

    o["quiet"] = common.quiet(ctx, o["quiet"])
    return bench.main(SimpleNamespace(**o))
