"""The ``labctl`` command line (click). The only place that prints errors and exits.

Data (reports, lists, schema, compose files) goes to stdout; progress and errors to
stderr. Every flag can also come from ``LABCTL_<FLAG>`` (e.g. ``LABCTL_JOBS=4``), see
``labctl.cli.params``. One module per group of commands; ``main`` maps every error to
its exit code (0/1/2/3/130/143). Adding a command: docs/internals.md, "Adding a command".
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Sequence

import click

from labctl import __version__
from labctl.cli import common, params
from labctl.cli.build_clean_bench import bench_cmd, build_cmd, clean_cmd
from labctl.cli.check import check_cmd
from labctl.cli.export import export_cmd
from labctl.cli.inspect import inspect_cmd
from labctl.cli.importer import import_cmd
from labctl.cli.run import run_cmd
from labctl.cli.scenarios import compose_cmd, init_cmd, list_cmd, schema_cmd, validate_cmd
from labctl.errors import EXIT_OK, Interrupted, LabctlError, ScenarioError, ScenarioErrors

EPILOG = """\b
Exit codes: 0 all passed, 1 a scenario failed, 2 usage or scenario file error
(nothing started), 3 environment error (engine, build), 130/143 interrupted
by Ctrl-C/SIGTERM (after cleanup). Every flag can be set as LABCTL_<FLAG> in the
environment (shown in each command's --help); the command line wins.
"""


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `labctl list | head`: the reader left, not an error
            return EXIT_OK


@click.group(name="labctl", cls=_Group, epilog=EPILOG, no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"],
                                                          "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="labctl", message="%(prog)s %(version)s")
@params.quiet
def labctl(quiet: bool) -> None:
    """A containerized lab for Linux shared-memory IPC: run writer/reader pairs in
    containers and check what they share, what stays isolated, and what is cleaned up.

    \b
    Examples:
      labctl run                     # ./scenarios, else the built-in library
      labctl run my.yaml --format json
      labctl COMMAND --help
    """


for _cmd in (run_cmd, validate_cmd, list_cmd, build_cmd, clean_cmd, schema_cmd, compose_cmd, bench_cmd, init_cmd, export_cmd,
             check_cmd, inspect_cmd, import_cmd):
    labctl.add_command(_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labctl`` console script; returns the exit code."""
    try:
        rv = labctl.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="labctl",
                         standalone_mode=False)
        return EXIT_OK if rv is None else int(rv)  # None: --help, --version
    except click.ClickException as e:  # usage errors, bad LABCTL_ values: exit 2, no traceback
        e.show()
        return e.exit_code
    except Interrupted as e:
        common.err(f"labctl: {e}")
        _exit_if_threads_linger(e.exit_code)
        return e.exit_code
    except LabctlError as e:
        # Located errors already start with FILE:LINE:COL; a prefix would hide that.
        common.err(str(e) if isinstance(e, (ScenarioError, ScenarioErrors)) else f"labctl: {e}")
        return e.exit_code
    except (KeyboardInterrupt, click.Abort):
        common.err("labctl: interrupted")
        return 130


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
