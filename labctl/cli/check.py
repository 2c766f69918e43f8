"""``labctl check``: shared-memory pitfalls in Compose files and Kubernetes manifests (engine-free)."""

from __future__ import annotations

import gc
import sys

import click

from labctl.cli import common
from labctl.cli.params import CommaList, option
from labctl.errors import EXIT_FAILED, EXIT_OK, UsageError

CHECK_FORMATS = ("text", "json", "sarif")


@click.command("check", epilog="""\b
Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it; 2 unreadable or
invalid input (FILE:LINE:COL: message; nothing else is checked) or a usage error.""")
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True), metavar="PATH...|-")
@option("-f", "--file", "files", multiple=True, type=CommaList(), metavar="FILE",
        help="A Compose file of one project; repeat it to merge several as `docker compose -f a -f b` does.")
@option("--format", "fmt", type=click.Choice(CHECK_FORMATS), default="text", show_default=True,
        env_ignore=("junit", "markdown"),
        help="text: FILE:LINE:COL RULE message; json; sarif (SARIF 2.1.0, for code scanning).")
@option("--fail-on", type=click.Choice(["error", "warning", "note"]), default="warning", show_default=True,
        help="The lowest severity that makes the exit code 1.")
@option("--ignore", multiple=True, type=CommaList(), metavar="RULE",
        help="Do not report RULE (repeatable); a `# labctl: ignore=RULE` comment does it for one line.")
@option("--profile", "profiles", multiple=True, type=CommaList(), metavar="NAME",
        help="Enable a Compose profile (repeatable; default: COMPOSE_PROFILES).")
@option("--env-file", metavar="PATH", help="Interpolation variables from this file instead of the project's .env.")
@option("--topology", is_flag=True, help="Print the IPC topology the files declare before the findings (text).")
@option("--list-rules", is_flag=True, help="Print the rules with their library scenarios and exit.")
def check_cmd(paths: tuple[str, ...], files: tuple[str, ...], fmt: str, fail_on: str, ignore: tuple[str, ...],
              profiles: tuple[str, ...], env_file: str | None, topology: bool, list_rules: bool) -> int:
    """Find shared-memory pitfalls in Compose files and Kubernetes manifests.

    Reads Compose files (interpolation with .env, extends, profiles; -f merges several into
    one project) and Kubernetes manifests (Pods and the pod templates of Deployments,
    StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs; multi-document streams). `-`
    reads standard input. Derives which containers share an IPC namespace and /dev/shm,
    then applies the rules; each rule names the library scenario that shows the pitfall on
    an engine (`--list-rules`). No engine is contacted.

    \b
    Examples:
      labctl check docker-compose.yml
      labctl check -f compose.yaml -f compose.prod.yaml --topology
      helm template ./chart | labctl check - --format sarif > labctl.sarif
      labctl compose scenarios/tmpfs-not-shared.yaml | labctl check -
    """
    from labctl import lint, stack
    from labctl.lint import reports as output

    if list_rules:
        sys.stdout.write(output.list_rules("json" if fmt == "json" else "text"))
        return EXIT_OK
    if not paths and not files:
        raise UsageError("name Compose files or manifests to check (or - for standard input)")
    known = lint.table()
    unknown = [r for r in ignore if r not in known]
    if unknown:
        raise UsageError(f"--ignore: no rule {', '.join(unknown)} (see labctl check --list-rules)")
    if list(paths).count("-") > 1:
        raise UsageError("- (standard input) can be named once")
    # One short pass over acyclic trees: the cyclic collector would only rescan them as they
    # grow (a third of the time of a 1,000-service file, benchmarks/check_speed.py).
    gc.disable()
    topo = stack.load(list(paths), files=list(files), profiles=profiles, env_file=env_file)
    for note in topo.notes:
        common.err(f"labctl check: {note}")
    findings = lint.run(topo, ignore)
    if fmt == "json":
        sys.stdout.write(output.to_json(topo, findings))
    elif fmt == "sarif":
        sys.stdout.write(output.to_sarif(topo, findings))
    else:
        if topology:
            sys.stdout.write(stack.render_topology(topo))
        sys.stdout.write(output.text(findings))
        counts = output.summary(findings)
        common.err(f"labctl check: {len(topo.inputs)} input(s), {len(topo.containers)} container(s), "
                   f"{len(topo.namespaces)} IPC namespace(s): "
                   + (", ".join(f"{n} {k}" for k, n in counts.items() if n) if findings else "no finding"))
    failing = [f for f in findings if lint.at_or_above(f.severity, fail_on)]
    return EXIT_FAILED if failing else EXIT_OK
