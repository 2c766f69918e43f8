"""The ``labctl`` command line. The only module that prints errors and exits.

Data (reports, lists, schema, compose files) goes to stdout; progress and errors to
stderr. Every flag can also come from ``LABCTL_<FLAG>`` (e.g. ``LABCTL_JOBS=4``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Sequence

from labctl import __version__
from labctl.errors import EXIT_FAILED, EXIT_OK, Interrupted, LabctlError, ScenarioError, ScenarioErrors, UsageError

if TYPE_CHECKING:  # the model and results are imported lazily at run time (fast --help)
    from labctl.results import ScenarioResult
    from labctl.scenario.model import Pos, Scenario

DEFAULT_PATH = "scenarios"
RUN_FORMATS = ("text", "json", "junit")
LIST_FORMATS = ("text", "json")
HANDOUT_FORMATS = (*LIST_FORMATS, "markdown")  # list only: markdown is the handout
OPT_INS = {
    "allow-host-ipc": "ipc: host (the segment is created in the host's namespace)",
    "allow-host-paths": "bind mounts of host paths outside the scenario's folder",
    "allow-privileged": "privileged mode, added capabilities, host pid, networks or devices",
}


# --------------------------------------------------------------------------- helpers


def _env(flag: str) -> str | None:
    return os.environ.get(_env_name(flag))


def _env_name(flag: str) -> str:
    return "LABCTL_" + flag.upper().replace("-", "_")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class _BadEnv:
    """A malformed LABCTL_ variable, kept as the default of its option. It is reported
    (exit 2) only if the command being run has that option: a bad LABCTL_ITERATIONS
    (bench) must not break ``labctl run``."""

    def __init__(self, message: str) -> None:
        self.message = message


def _env_bool(flag: str) -> "bool | _BadEnv":
    """A boolean flag from the environment. Anything but a clear yes/no is a usage error:
    a typo in LABCTL_ALLOW_PRIVILEGED must not silently grant (or deny) anything."""
    v = _env(flag)
    if v is None or v.strip().lower() in _FALSE:
        return False
    if v.strip().lower() in _TRUE:
        return True
    return _BadEnv(f"{_env_name(flag)}={v!r}: expected one of 1, true, yes, on, 0, false, no, off")


def _env_int(flag: str, default: int) -> "int | _BadEnv":
    v = _env(flag)
    if v is None or not v.strip():
        return default
    try:
        return int(v.strip())
    except ValueError:
        return _BadEnv(f"{_env_name(flag)}={v!r}: expected an integer")


def _env_float(flag: str, default: float) -> "float | _BadEnv":
    v = _env(flag)
    if v is None or not v.strip():
        return default
    try:
        return float(v.strip())
    except ValueError:
        return _BadEnv(f"{_env_name(flag)}={v!r}: expected a number of seconds")


ALL_FORMATS = ("text", "json", "junit", "markdown")


def _env_choice(flag: str, choices: tuple[str, ...], default: str) -> "str | _BadEnv":
    # argparse does not check defaults against ``choices``, so the environment is checked
    # here. LABCTL_FORMAT=junit is meant for `run`; `list` then keeps its own default.
    v = _env(flag)
    if v is None or not v.strip():
        return default
    if v.strip() in choices:
        return v.strip()
    if flag == "format" and v.strip() in ALL_FORMATS:
        return default
    return _BadEnv(f"{_env_name(flag)}={v!r}: expected one of {', '.join(choices)}")


def _check_env(args: argparse.Namespace) -> None:
    """Raise UsageError for a malformed LABCTL_ variable the chosen command uses."""
    for value in vars(args).values():
        if isinstance(value, _BadEnv):
            raise UsageError(value.message)


def _env_list(flag: str) -> list[str]:
    v = _env(flag)
    return [x.strip() for x in v.split(",") if x.strip()] if v else []


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()


def _raw_err(msg: str) -> None:
    try:
        os.write(2, (msg + "\n").encode())
    except OSError:
        pass


class Progress:
    """Progress lines on stderr: rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self._lock = threading.Lock()
        self._live = False

    def status(self, msg: str) -> None:
        if self.quiet or not self.tty:
            return
        with self._lock:
            sys.stderr.write("\r\x1b[K" + msg[:150])
            sys.stderr.flush()
            self._live = True

    def line(self, msg: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._live:
                sys.stderr.write("\r\x1b[K")
                self._live = False
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()


def _load(paths: Sequence[str]):
    from labctl import scenario as scen

    files_or_dirs = list(paths) or [DEFAULT_PATH]
    return scen.load_all(files_or_dirs)


def _filter(scenarios, tags: list[str], substrings: list[str]):
    out = []
    for s in scenarios:
        if tags and not set(tags) & set(s.tags):
            continue
        if substrings and not any(k in s.name for k in substrings):
            continue
        out.append(s)
    return out


def _missing_opt_ins(scenario: Scenario, args: argparse.Namespace) -> list[tuple[str, str, Pos]]:
    return [(flag, path, pos) for flag, path, pos in scenario.requires
            if not getattr(args, flag.replace("-", "_"), False)]


def _refuse_opt_ins(scenarios: list[Scenario], args: argparse.Namespace, *,
                    skip_discovered: bool = False) -> tuple[list[Scenario], list[ScenarioResult]]:
    """Scenarios that need an opt-in the user did not give: a file named on the command line
    is refused (exit 2, nothing started); one found in a folder is skipped with the reason,
    so a library run does not stop on them. Returns (runnable, skipped results)."""
    from labctl.results import ScenarioResult

    explicit = {os.path.normpath(p) for p in args.paths if os.path.isfile(p)}
    errors, runnable, skipped = [], [], []
    for s in scenarios:
        missing = _missing_opt_ins(s, args)
        if not missing:
            runnable.append(s)
        elif skip_discovered and os.path.normpath(s.file) not in explicit:
            flags = sorted({f"--{flag}" for flag, _, _ in missing})
            skipped.append(ScenarioResult(s.name, s.file, "skipped", message=f"needs {' '.join(flags)}", tags=s.tags))
        else:
            errors += [ScenarioError(pos.file, pos.line, pos.col, path,
                                     f"needs --{flag} ({OPT_INS.get(flag, flag)}); refused without it")
                       for flag, path, pos in missing]
    if errors:
        raise ScenarioErrors(errors)
    return runnable, skipped


def _connect():
    from labctl.runtime import Engine

    return Engine.connect()


def _ensure_image(engine, progress: Progress, force: bool = False):
    from labctl import build

    return build.ensure_image(engine, force=force, progress=progress.line)


# --------------------------------------------------------------------------- commands


def cmd_build(args: argparse.Namespace) -> int:
    progress = Progress(args.quiet)
    engine = _connect()
    t0 = time.monotonic()
    res = _ensure_image(engine, progress, force=args.force)
    verb = "built" if res.built else "up to date:"
    progress.line(f"{verb} {res.image} ({time.monotonic() - t0:.2f}s)")
    print(res.image)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    scenarios = _load(args.paths)
    _refuse_opt_ins(scenarios, args, skip_discovered=True)
    for s in scenarios:
        missing = sorted({f"--{flag}" for flag, _, _ in _missing_opt_ins(s, args)})
        note = f"; runs only with {' '.join(missing)}" if missing else ""
        print(f"ok  {s.file}  ({s.name}: {len(s.containers)} containers, {len(s.checks)} checks{note})")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    scenarios = _filter(_load(args.paths), args.tag, args.k)
    if args.format == "json":
        print(json.dumps([{"name": s.name, "file": s.file, "tags": list(s.tags),
                           "description": s.description.strip().splitlines()[0] if s.description.strip() else ""}
                          for s in scenarios], indent=2))
        return EXIT_OK
    if args.format == "markdown":  # the handout, docs/scenarios.md
        from labctl.handout import render_markdown

        sys.stdout.write(render_markdown(scenarios))
        return EXIT_OK
    width = max((len(s.name) for s in scenarios), default=4)
    for s in scenarios:
        first = s.description.strip().splitlines()[0] if s.description.strip() else ""
        print(f"{s.name:<{width}}  [{','.join(s.tags)}]  {first}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from labctl.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_compose(args: argparse.Namespace) -> int:
    from labctl import scenario as scen
    from labctl.compose import render_compose

    s = scen.load_file(args.scenario)
    sys.stdout.write(render_compose(s))
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from labctl import cleanup

    if args.run and args.stale:  # a usage error is exit 2 whether or not the engine answers
        raise UsageError("--run and --stale cannot be used together")
    engine = _connect()
    if args.run:
        removed, errors = cleanup.remove_run(engine, args.run)
    else:
        removed, errors = cleanup.clean(engine, stale_only=args.stale)
    for r in removed:
        _err(f"removed {r}")
    for e in errors:
        _err(f"labctl: could not remove {e}")
    _err(f"{len(removed)} object(s) removed")
    return EXIT_FAILED if errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from labctl import cleanup, report, runner

    # Installed before anything else, so a SIGTERM at any phase (loading, building,
    # creating, checking, tearing down) takes the same path: remove this run's
    # objects, then exit 128+signal.
    cancel = threading.Event()
    received = _install_signals(cancel)
    engine = None
    run_id = str(uuid.uuid4())
    progress = Progress(args.quiet)
    try:
        specs = [report.parse_report_spec(s) for s in args.report]
        report.check_writable(specs)  # before the run, not after it: exit 2, nothing started
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        scenarios, skipped = _refuse_opt_ins(_filter(_load(args.paths), args.tag, args.k), args, skip_discovered=True)
        if not scenarios and not skipped:
            raise UsageError("no scenario matches the given paths and filters")
        engine = _connect()
        for r in cleanup.remove_stale(engine)[0]:
            progress.line(f"removed stale {r} (left by a labctl that died)")
        image = _ensure_image(engine, progress).image
        total = len(scenarios)
        done = [0]

        def on_result(res) -> None:
            done[0] += 1
            mark = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}[res.status]
            progress.line(f"[{done[0]}/{total}] {mark} {res.name} ({res.duration_s:.2f}s)")

        progress.line(f"running {total} scenario(s), {args.jobs} at a time (run {run_id[:8]})")
        result = runner.run_all(engine, scenarios, image, run_id=run_id, jobs=args.jobs, keep=args.keep,
                                cancel=cancel, progress=progress.status, on_result=on_result)
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
            removed, errors = cleanup.remove_run(engine, run_id)
            for e in errors:
                _err(f"labctl: could not remove {e}")
            progress.line(f"interrupted: removed {len(removed)} object(s) in {time.monotonic() - t0:.2f}s")
        raise Interrupted(received[0]) from None
    finally:
        _restore_signals()
    for sk in skipped:
        progress.line(f"SKIP {sk.name}: {sk.message} ({sk.file})")
    result.scenarios += skipped
    out = report.render(result, args.format, color=sys.stdout.isatty())
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    sys.stdout.flush()
    for path in report.write_reports(result, specs):
        progress.line(f"wrote {path}")
    if args.keep:
        progress.line("--keep: containers left for inspection; remove them with `labctl clean`")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_bench(args: argparse.Namespace) -> int:
    from labctl import bench

    return bench.main(args)


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
            _raw_err("labctl: second interrupt, exiting now; `labctl clean --stale` removes what is left")
            os._exit(128 + signum)
        _raw_err(f"labctl: {signal.Signals(signum).name}: stopping and removing this run's objects "
                 "(interrupt again to exit at once)")
        raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        _old_handlers[sig] = signal.signal(sig, handler)
    return received


def _restore_signals() -> None:
    for sig, old in _old_handlers.items():
        signal.signal(sig, old)  # type: ignore[arg-type]
    _old_handlers.clear()


# --------------------------------------------------------------------------- parser


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=f"scenario files or folders (default: {DEFAULT_PATH}/)")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the command it overrides the global -q, absent it leaves it alone
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress on stderr")


def _add_opt_ins(p: argparse.ArgumentParser) -> None:
    for flag, what in OPT_INS.items():
        p.add_argument(f"--{flag}", action="store_true", default=_env_bool(flag), help=f"allow {what}")


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", action="append", default=_env_list("tag"), metavar="TAG",
                   help="only scenarios with this tag (repeatable)")
    p.add_argument("-k", action="append", default=_env_list("k"), metavar="SUBSTRING",
                   help="only scenarios whose name contains SUBSTRING (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labctl",
        description="A containerized lab for Linux shared-memory IPC: run writer/reader pairs in "
                    "containers and check what they share, what stays isolated, and what is cleaned up.",
        epilog="Exit codes: 0 all passed, 1 a scenario failed, 2 usage or scenario file error, "
               "3 environment error (engine, build), 130 interrupted. Every flag can be set as "
               "LABCTL_<FLAG> in the environment.",
    )
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", default=_env_bool("quiet"), help="no progress on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run scenario files or folders")
    _add_quiet(p)
    _add_paths(p)
    p.add_argument("--format", choices=RUN_FORMATS, default=_env_choice("format", RUN_FORMATS, "text"),
                   help="report on stdout (default: text)")
    p.add_argument("--report", action="append", default=_env_list("report"), metavar="FORMAT:PATH",
                   help="also write a report to PATH (repeatable), e.g. junit:out/junit.xml")
    _add_filters(p)
    p.add_argument("--jobs", "-j", type=int, default=_env_int("jobs", 1), metavar="N",
                   help="scenarios run in parallel (default: 1)")
    p.add_argument("--keep", action="store_true", default=_env_bool("keep"),
                   help="leave containers for inspection (`labctl clean` removes them)")
    _add_opt_ins(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check scenario files without touching the engine")
    _add_paths(p)
    _add_opt_ins(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("list", help="names, tags and one-line descriptions")
    _add_paths(p)
    _add_filters(p)
    p.add_argument("--format", choices=HANDOUT_FORMATS, default=_env_choice("format", HANDOUT_FORMATS, "text"))
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("build", help="compile the workloads and build the images (no-op when unchanged)")
    _add_quiet(p)
    p.add_argument("--force", action="store_true", default=_env_bool("force"), help="rebuild even if up to date")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("clean", help="remove every object labelled io.labctl.managed=true")
    p.add_argument("--stale", action="store_true", default=_env_bool("stale"),
                   help="only objects of labctl runs whose process is gone")
    p.add_argument("--run", default=_env("run") or "", metavar="RUN_ID",
                   help="only the objects of this run (label io.labctl.run-id)")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("schema", help="print the JSON Schema of a scenario file")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("compose", help="print a compose file equivalent to a scenario")
    p.add_argument("scenario", metavar="SCENARIO", help="a scenario file")
    p.set_defaults(func=cmd_compose)

    p = sub.add_parser("bench", help="the IPC benchmark: shared memory against pipes, sockets and TCP")
    p.add_argument("--format", choices=LIST_FORMATS, default=_env_choice("format", LIST_FORMATS, "text"))
    p.add_argument("--sizes", default=_env("sizes") or "64,4096,65536,1048576", help="message sizes in bytes")
    p.add_argument("--iterations", type=int, default=_env_int("iterations", 20000))
    p.add_argument("--mechanisms", default=_env("mechanisms") or "", help="comma-separated subset")
    p.add_argument("--chart", default=_env("chart") or "", metavar="PNG",
                   help="also write a chart (needs matplotlib: pip install 'labctl[bench]')")
    p.add_argument("--placements", default=_env("placements") or "host,container",
                   help="host, container or both (default: both, in the same run)")
    p.add_argument("--timeout", type=float, default=_env_float("timeout", 20.0), metavar="SECONDS",
                   help="deadline of each pair's measurement (default: 20)")
    p.add_argument("--rounds", type=int, default=_env_int("rounds", 5), metavar="N",
                   help="paired rounds per mechanism and size: host and container back to back, the ratio "
                        "taken per round; rows whose rounds disagree are flagged NOISY (default: 5)")
    p.add_argument("--no-pin", action="store_true", default=_env_bool("no_pin"),
                   help="do not pin the server to CPU 0 and the client to CPU 1")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labctl`` console script; returns the exit code."""
    try:
        # Defaults come from LABCTL_<FLAG>: a malformed one is a usage error, found here.
        args = build_parser().parse_args(argv)
        _check_env(args)
    except UsageError as e:
        _err(f"labctl: {e}")
        return e.exit_code
    try:
        return int(args.func(args))
    except Interrupted as e:
        _err(f"labctl: {e}")
        _exit_if_threads_linger(e.exit_code)
        return e.exit_code
    except LabctlError as e:
        # Located errors already start with FILE:LINE:COL; a prefix would hide that.
        _err(str(e) if isinstance(e, (ScenarioError, ScenarioErrors)) else f"labctl: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _err("labctl: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK


LINGER_S = 3.0  # after an interrupt, how long worker threads get to notice before a hard exit


def _exit_if_threads_linger(code: int) -> None:
    """After an interrupt and the cleanup, worker threads stuck in an engine call would keep
    the interpreter alive (thread pools are joined at exit): give them a bounded moment,
    then exit without waiting. Their objects are already removed by label."""
    deadline = time.monotonic() + LINGER_S
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


