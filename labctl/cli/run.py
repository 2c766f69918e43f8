"""``labctl run``: load, filter, build if needed, run, report; and its interrupt path."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import uuid

import click

from labctl.cli import common, staged
from labctl.cli.runtimes import runtime_option, with_runtime
from labctl.cli.params import (RUN_FORMATS, CommaList, engines, filters, opt_ins, option, output_format, paths,
                               platform_option, quiet)
from labctl.errors import EXIT_FAILED, EXIT_OK, Interrupted, UsageError
from labctl.report.results import STATUS_LABELS, EngineInfo, RunResult


@click.command("run")
@paths
@output_format(RUN_FORMATS, "Report on stdout")
@option("--report", multiple=True, metavar="FORMAT:PATH", type=CommaList(),
        help="Also write a report to PATH in the same run (repeatable), e.g. junit:out/junit.xml.")
@filters
@option("--jobs", "-j", type=click.IntRange(min=1), default=None, metavar="N",
        help=f"Scenarios run in parallel (default: the CPU cores labctl may use, {common.cores()} here; "
             "host-IPC scenarios run one at a time).")
@option("--keep", is_flag=True, help="Leave containers for inspection (`labctl clean` removes them).")
@platform_option("Run workload containers that name no platform: on this one instead of the engine's own")
@runtime_option
@opt_ins
@engines
@quiet
@click.pass_context
def run_cmd(ctx: click.Context, **opts) -> int:
    """Run scenario files or folders (default: ./scenarios, else the built-in library).

    A PATH that does not exist may name a library scenario (`labctl list`).
    Builds the workload image first if it is missing. The report goes to stdout,
    progress to stderr. A scenario that needs an --allow-* flag is refused when
    named on the command line, skipped (with the reason) when found in a folder.

    \b
    Examples:
      labctl run                                  # the whole library
      labctl run scenarios/sysv-shareable.yaml --format json
      labctl run sysv-shareable                   # a library scenario by its name
      labctl run -k sysv --tag isolation --jobs 2 --report junit:out/junit.xml
      LABCTL_JOBS=2 LABCTL_FORMAT=junit labctl run > junit.xml
      labctl run --platform linux/arm64           # the library on arm64 (emulated on x86_64)
      labctl run --engine podman                  # on Podman (its API socket)
      labctl run --engine docker --engine podman  # both, outcomes side by side
      labctl run --tag runtime --runtime runsc    # under gVisor (see docs/runtimes.md)

    A platform the engine can only emulate needs qemu registered in binfmt_misc
    with the F flag; without it the run stops before starting anything (exit 3)
    and prints the commands that install it. A scenario whose OCI runtime
    (runtime:, --runtime) the engine lacks is skipped with the reason and the
    fix, refused (exit 3) when named on the command line.

    Exit: 0 all passed, 1 a scenario failed (on any engine), 2 usage or scenario file error
    (nothing started), 3 engine or build error, 130/143 interrupted (after cleanup).
    """
    opts["jobs"] = opts["jobs"] or common.cores()
    return run(opts, quiet=common.quiet(ctx, opts["quiet"]))


def run(o: dict, *, quiet: bool) -> int:
    """The run itself, from the parsed options ``o`` (parameter name -> value)."""
    from labctl.runtime import clean

    # Installed before anything else, so a SIGTERM at any phase (loading, building,
    from labctl.report import formats
    # creating, checking, tearing down) takes the same path: remove this run's
    # objects, then exit 128+signal.
    cancel = threading.Event()
    received = _install_signals(cancel)
    engine = None
    run_id = str(uuid.uuid4())
    progress = common.Progress(quiet)
    try:
        specs = [formats.parse_report_spec(s) for s in o["report"]]
        formats.check_writable(specs)  # before the run, not after it: exit 2, nothing started
        scenarios, skipped = common.refuse_opt_ins(common.select(common.load(o["paths"], progress.line), o["tag"], o["k"]),
                                                   o, o["paths"], skip_discovered=True)
        scenarios = with_runtime(scenarios, o.get("runtime"))
        if not scenarios and not skipped:
            raise UsageError("no scenario matches the given paths and filters")
        names = list(dict.fromkeys(o.get("engines") or ())) or [None]
        result = RunResult(run_id)
        connected = []
        for name in names:  # all of them first: what each lacks is known before anything starts
            engine = common.connect(name)
            connected.append(engine)
            if o["platform"]:  # named with --platform: refused (exit 3) where it cannot run
                common.check_platforms(engine, {o["platform"]}, progress)
        per_engine = common.refuse_unmet(connected, scenarios, o, o["paths"])
        order = {s.name: i for i, s in enumerate(scenarios)}
        for engine in connected:
            todo, lacking = per_engine[engine.name]
            for sk in lacking:
                progress.line(f"SKIP {sk.name}: {sk.message} ({sk.file})")
            one = _run_on(engine, todo, run_id, o, cancel, progress)
            both = one.scenarios + [dataclasses.replace(sk, engine=engine.name) for sk in lacking]
            result.scenarios += sorted(both, key=lambda r: order.get(r.name, len(order)))
            result.duration_s += one.duration_s
            result.engines += one.engines
            engine.close()
        if received:  # a signal that arrived where nothing raised (e.g. inside a check)
            raise Interrupted(received[0])
    except BaseException:
        if not received:
            raise
        # Whatever the signal interrupted, the answer is the same: this run's objects go.
        # A second signal during this cleanup forces the exit (see _install_signals).
        cancel.set()
        if engine is not None:
            progress.line("interrupted: removing this run's containers and volumes...")
            t0 = time.monotonic()
            removed, errors = clean.remove_run(engine, run_id)
            for e in errors:
                common.err(f"labctl: could not remove {e}")
            progress.line(f"interrupted: removed {len(removed)} object(s) in {time.monotonic() - t0:.2f}s")
        raise Interrupted(received[0]) from None
    finally:
        _restore_signals()
    for sk in skipped:
        progress.line(f"SKIP {sk.name}: {sk.message} ({sk.file})")
    for info in result.engines:  # what the opt-in refusal skipped, it skipped on every engine
        result.scenarios += [dataclasses.replace(sk, engine=info.name) for sk in skipped]
    out = formats.render(result, o["format"], color=sys.stdout.isatty())
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    sys.stdout.flush()
    for path in formats.write_reports(result, specs):
        progress.line(f"wrote {path}")
    if o["keep"]:
        progress.line(f"--keep: containers left for inspection; remove them with `labctl clean --run {run_id}`")
    return EXIT_OK if result.ok else EXIT_FAILED


def _run_on(engine, scenarios: list, run_id: str, o: dict, cancel: threading.Event,
            progress: common.Progress) -> RunResult:
    """The scenarios on one engine (stale runs removed, image built first); every result
    names the engine, the run its name and version."""
    from labctl import runner
    from labctl.runtime import clean

    info = EngineInfo(engine.name, engine.describe().split(" ", 1)[1])
    for r in clean.remove_stale(engine)[0]:
        progress.line(f"removed stale {r} (left by a labctl that died)")
    if not scenarios:  # every one was skipped here: nothing to build
        return RunResult(run_id, [], engines=[info])
    total = len(scenarios)
    done = [0]

    def on_result(res) -> None:
        done[0] += 1
        progress.line(f"[{done[0]}/{total}] {STATUS_LABELS[res.status]} {res.name} ({res.duration_s:.2f}s)")

    def run_these(todo: list, image: str, images: dict[str, str]) -> RunResult:
        return runner.run_all(engine, todo, image, run_id=run_id, jobs=o["jobs"], keep=o["keep"], cancel=cancel,
                              progress=progress.status, on_result=on_result, images=images, platform=o["platform"])

    if o["platform"]:  # every workload moves to that platform: its image first
        image, images = common.prepare_images(engine, scenarios, o["platform"], progress)
        progress.line(f"running {total} scenario(s) on {info}, {o['jobs']} at a time (run {run_id[:8]})")
        result = run_these(scenarios, image, images)
    else:
        # the engine's own image first; other platforms' and example images build while the
        # scenarios that need only it run (see labctl.cli.staged)
        t0 = time.monotonic()
        some = any(c.platform or (c.image or "").startswith("labctl/") for s in scenarios for c in s.containers)
        native = common.native_platform(engine) if some else ""
        now, later = staged.split(scenarios, native)
        wanted = {c.platform for s in later for c in s.containers if c.platform and c.workload}
        common.check_platforms(engine, wanted, progress)
        # started first: zig's musl build for another target is the longest step of a cold run
        extra = [staged.Background(lambda: common.ensure_platform_images(engine, wanted, progress)),
                 staged.Background(lambda: common.build_extras(engine, later, None, progress, platforms=False))] \
            if later else []
        image = common.prepare_images(engine, now, None, progress)[0]
        progress.line(f"running {total} scenario(s) on {info}, {o['jobs']} at a time (run {run_id[:8]})"
                      + (f"; {len(later)} of them once their images are built" if later else ""))
        result = run_these(now, image, {})
        if extra:
            images = extra[0].result(cancel)
            extra[1].result(cancel)
            if cancel.is_set():
                raise Interrupted(signal.SIGINT)
            second = run_these(later, image, images)
            order = {s.name: i for i, s in enumerate(scenarios)}
            result.scenarios = sorted(result.scenarios + second.scenarios, key=lambda r: order[r.name])
        result.duration_s = time.monotonic() - t0
    for s in result.scenarios:
        s.engine = engine.name
    result.engines = [info]
    return result


# --------------------------------------------------------------------------- signals

_old_handlers: dict[int, object] = {}


def _install_signals(cancel: threading.Event) -> list[int]:
    """SIGINT/SIGTERM: the first sets ``cancel`` (worker threads poll it) and raises
    Interrupted in the main thread; a second one exits at once with 128+signal (what is
    left is then a stale run for `labctl clean --stale`). Returns the list the handler
    appends the received signal numbers to."""
    received: list[int] = []

    def handler(signum, _frame):
        received.append(signum)
        cancel.set()
        # os.write, not sys.stderr: the handler may run while the main thread is inside a
        # buffered write to stderr, and re-entering it raises instead of printing.
        if len(received) > 1:
            common.raw_err("labctl: second interrupt, exiting now; `labctl clean --stale` removes what is left")
            os._exit(128 + signum)
        common.raw_err(f"labctl: {signal.Signals(signum).name}: stopping and removing this run's objects "
                       "(interrupt again to exit at once)")
        raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        _old_handlers[sig] = signal.signal(sig, handler)
    return received


def _restore_signals() -> None:
    for sig, old in _old_handlers.items():
        signal.signal(sig, old)  # type: ignore[arg-type]
    _old_handlers.clear()
