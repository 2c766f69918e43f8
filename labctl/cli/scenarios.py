"""Commands that read scenario files and never touch the engine: validate, list, schema,
compose, init."""

from __future__ import annotations

import json
import sys

import click

from labctl.cli import common
from labctl.cli.params import HANDOUT_FORMATS, filters, opt_ins, option, output_format, paths
from labctl.errors import EXIT_OK


@click.command("validate")
@paths
@opt_ins
def validate_cmd(**o) -> int:
    """Check scenario files without touching the engine.

    Prints one `ok` line per valid scenario on stdout; errors go to stderr as
    FILE:LINE:COL: key: message (exit 2).

    \b
    Examples:
      labctl validate                      # the whole library
      labctl validate my-scenario.yaml other/
    """
    scenarios = common.load(o["paths"])
    common.refuse_opt_ins(scenarios, o, o["paths"], skip_discovered=True)
    for s in scenarios:
        missing = sorted({f"--{flag}" for flag, _, _ in common.missing_opt_ins(s, o)})
        note = f"; runs only with {' '.join(missing)}" if missing else ""
        steps = f", {len(s.steps)} steps" if s.steps else ""
        print(f"ok  {s.file}  ({s.name}: {len(s.containers)} containers{steps}, {len(s.checks)} checks{note})")
    return EXIT_OK


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@click.command("list")
@paths
@filters
@output_format(HANDOUT_FORMATS, "text (a table), json, or markdown (the handout, docs/scenarios.md)")
def list_cmd(**o) -> int:
    """Names, tags and one-line descriptions of scenarios.

    \b
    Examples:
      labctl list --tag isolation
      labctl list --format json
      labctl list --format markdown > docs/scenarios.md
    """
    scenarios = common.select(common.load(o["paths"]), o["tag"], o["k"])
    if o["format"] == "json":
        print(json.dumps([{"name": s.name, "file": s.file, "tags": list(s.tags), "description": _first_line(s.description)}
                          for s in scenarios], indent=2))
    elif o["format"] == "markdown":
        from labctl.report.handout import render_markdown

        sys.stdout.write(render_markdown(scenarios))
    else:
        width = max((len(s.name) for s in scenarios), default=4)
        for s in scenarios:
            print(f"{s.name:<{width}}  [{','.join(s.tags)}]  {_first_line(s.description)}")
    return EXIT_OK


@click.command("schema")
def schema_cmd() -> int:
    """Print the JSON Schema of a scenario file (for editors and CI).

    \b
    Example:
      labctl schema > docs/scenario.schema.json
    """
    from labctl.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


@click.command("compose")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
def compose_cmd(scenario: str) -> int:
    """Print a compose file equivalent to the scenario file SCENARIO.

    \b
    Example:
      labctl compose scenarios/sysv-shareable.yaml > compose.yml && docker compose -f compose.yml up
    """
    from labctl import scenario as scen
    from labctl.export.compose import render_compose

    sys.stdout.write(render_compose(scen.load_file(scenario)))
    return EXIT_OK


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO]...")
@option("--force", is_flag=True, help="Overwrite files that exist already.")
def init_cmd(directory: str, scenarios: tuple[str, ...], force: bool) -> int:
    """Copy the built-in scenario library (or the named SCENARIOs) into DIRECTORY, with
    the JSON Schema for editors: a starting point for your own scenarios.

    Refuses to overwrite a file unless --force (exit 2, nothing written).

    \b
    Examples:
      labctl init scenarios                      # the whole library; `labctl run` then runs ./scenarios
      labctl init my-lab sysv-shareable mmap-volume
    """
    from labctl.images.library import init
    from labctl.scenario.schema import json_schema

    written = init(directory, list(scenarios), force=force, schema_json=json.dumps(json_schema(), indent=2) + "\n")
    for path in written:
        print(path)
    common.err(f"{len(written)} file(s) written to {directory}; run them with `labctl run {directory}`")
    return EXIT_OK
