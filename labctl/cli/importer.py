"""``labctl import compose|k8s FILE``: a user's stack as a scenario with generated checks (engine-free)."""

from __future__ import annotations

import json
import os
import sys

import click

from labctl.cli import common
from labctl.cli.params import CommaList, option
from labctl.errors import EXIT_OK, ScenarioError, ScenarioErrors, UsageError


@click.command("import")
@click.argument("kind", type=click.Choice(["compose", "k8s"]))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True),
                metavar="FILE...")
@option("-o", "--output", type=click.Path(dir_okay=False), metavar="PATH",
        help="Write the scenario to PATH (and scenario.schema.json next to it, for editors, unless "
             "one is there) instead of stdout. Host paths of bind mounts are written relative to it.")
@option("--profile", "profiles", multiple=True, type=CommaList(), metavar="NAME",
        help="Compose: also import the services of this profile (repeatable), as "
             "`docker compose --profile NAME up` would start them.")
@option("--name", metavar="NAME", help="The scenario's name (default: the project's, or the first pod's, "
                                      "with -imported).")
def import_cmd(kind: str, files: tuple[str, ...], output: str | None, profiles: tuple[str, ...],
               name: str | None) -> int:
    """Write a scenario that runs the services of a Compose project (KIND compose; several
    FILEs merge as `docker compose -f A -f B` does) or the pods of Kubernetes manifests
    (KIND k8s, one FILE: Pods and the pod templates of Deployments, Jobs...)
    with their images, commands, IPC modes, /dev/shm sizes, volumes, users, memory limits
    and restart policies, plus generated checks of what the file declares: which services
    share an IPC namespace and which do not, the /dev/shm size inside each namespace, the
    volumes mounted at one path by several services, and that nothing is left afterwards.

    What a scenario cannot express is reported on stderr as FILE:LINE:COL: key: message
    and left as a comment in the scenario; the import goes on. Exit 2 when the file cannot
    be read or nothing runnable remains. Edit the result, then `labctl run` it.

    \b
    Examples:
      labctl import compose docker-compose.yml > stack.yaml && labctl run stack.yaml
      labctl import compose compose.yml compose.override.yml --profile debug -o lab/stack.yaml
      labctl import k8s pods.yaml -o pods-lab.yaml
      labctl import compose <(labctl compose scenarios/sysv-shareable.yaml)   # round trip
    """
    from labctl import scenario as scen
    from labctl.importer import generate
    from labctl.importer.from_compose import read_compose
    from labctl.importer.from_k8s import read_k8s

    if kind == "k8s" and len(files) > 1:
        raise UsageError("import k8s reads one FILE (concatenate manifests into one stream)")
    file = files[0]
    stack = read_compose(files, profiles=profiles) if kind == "compose" else read_k8s(file)
    out_dir = os.path.dirname(os.path.abspath(output)) if output else os.getcwd()
    shown = " ".join(f if f != "-" else "-" for f in files)
    result = generate(stack, out_dir=out_dir, command=f"labctl import {kind} {shown}", name=name)
    for note in result.notes:
        common.err(str(note))
    if not result.scenario.get("containers"):
        raise ScenarioErrors([ScenarioError(file, stack.pos.line, stack.pos.col, "",
                                            "nothing runnable remains (every service was left out, see above)")])
    target = output or "<stdout>"
    # What import writes must load as labctl run will load it; a failure here is labctl's bug.
    scen.load_text(result.text, target, base_dir=out_dir)
    if output:
        with open(output, "w") as f:
            f.write(result.text)
        schema = os.path.join(out_dir, "scenario.schema.json")
        if not os.path.exists(schema):
            from labctl.scenario.schema import json_schema

            with open(schema, "w") as f:
                f.write(json.dumps(json_schema(), indent=2) + "\n")
    else:
        sys.stdout.write(result.text)
    n = len(result.scenario["containers"])
    extra = f"; run it with {' '.join(result.opt_ins)}" if result.opt_ins else ""
    common.err(f"labctl import: {n} container(s), {len(result.scenario['checks'])} check(s), "
               f"{len(result.notes)} note(s) -> {target}{extra}")
    return EXIT_OK
