"""``labctl inspect``: what the running containers share over IPC, seen live (read-only)."""

from __future__ import annotations

import sys
import threading

import click

from labctl.cli import common
from labctl.cli.params import CommaList, engine, option, output_format, quiet
from labctl.errors import EXIT_OK, Interrupted


@click.command("inspect")
@click.argument("containers", nargs=-1, metavar="[CONTAINER]...")
@option("--project", metavar="NAME",
        help="Only the containers of this Compose project (label com.docker.compose.project), or on "
             "Podman of the pod of this name.")
@option("--label", "labels", multiple=True, type=CommaList(), metavar="K=V",
        help="Only containers carrying this label (K=V, or K: any value); repeatable, all must match.")
@option("--all", "all_", is_flag=True,
        help="Also list containers that do not run (exited, created): shown in their namespace, not probed.")
@option("--watch", type=click.FloatRange(min=0.5), metavar="SECONDS",
        help="Look again every SECONDS until Ctrl-C (exit 130 once the probes are removed).")
@output_format(("text", "json"), "Output format (json: see docs/inspect.md; with --watch one document a line)")
@option("--allow-privileged", is_flag=True,
        help="Enter private IPC namespaces (which `ipc: container:` cannot join) with a privileged probe "
             "in the host's pid namespace (setns on /proc/PID/ns/ipc, CAP_SYS_ADMIN). Without it they are "
             "listed as not inspected.")
@engine
@quiet
@click.pass_context
def inspect_cmd(ctx: click.Context, containers: tuple[str, ...], project: str | None, labels: tuple[str, ...],
                all_: bool, watch: float | None, format: str, allow_privileged: bool, engine: str | None,
                quiet: bool) -> int:
    """Show the running containers grouped by IPC namespace and what each namespace holds.

    Per namespace: its containers (IPC mode, memory use with the shmem share, limit),
    SysV segments (key, shmid, size, nattch, owner, perms, creator and last pid with
    the container holding them), semaphore sets, message queues, POSIX message queues,
    /dev/shm files, size and use; warnings where the state matches a pitfall of the
    scenario library (each names the scenario that explains it).

    It changes nothing and leaves nothing: one short-lived probe per namespace (the
    workload image's `shmlab probe`, no network, read-only, labelled io.labctl.*,
    removed at once) looks inside. Without a CONTAINER, --project or --label: every
    running container.

    \b
    Examples:
      labctl inspect --project demo
      labctl inspect writer reader --format json
      labctl inspect --label app=cache --watch 2
      labctl inspect --allow-privileged          # private namespaces too
    """
    from labctl.inspect import Inspector
    from labctl.inspect.show import to_json, to_text

    from labctl.cli.run import _install_signals, _restore_signals

    progress = common.Progress(common.quiet(ctx, quiet))
    cancel = threading.Event()
    _install_signals(cancel)
    try:
        eng = common.connect(engine)
        image = common.ensure_image(eng, progress).image
        if allow_privileged:
            progress.line("labctl inspect: --allow-privileged: private IPC namespaces are entered by a privileged "
                          "probe in the host's pid namespace (setns, CAP_SYS_ADMIN); it only reads")
        with Inspector(eng, image, privileged=allow_privileged) as insp:
            first = True
            while True:
                report = insp.look(containers, project, labels, all_)
                if format == "json":
                    text = to_json(report, one_line=bool(watch))
                else:
                    text = to_text(report)
                    if watch and sys.stdout.isatty():
                        text = "\x1b[H\x1b[2J" + text  # redraw in place
                    elif watch and not first:
                        text = "\n" + text
                sys.stdout.write(text)
                sys.stdout.flush()
                first = False
                if not watch or cancel.wait(watch):
                    break
    except Interrupted:
        progress.line("labctl inspect: interrupted; its probes are removed")
        raise
    finally:
        _restore_signals()
    return EXIT_OK
