"""The mechanism x runtime table of docs/runtimes.md, from real runs of tests/data/runtimes/.

Each cell is one scenario run: ``labctl run tests/data/runtimes --runtime R --engine E``;
the scenario passed -> shared; its ``shared`` check alone failed -> not shared; the engine
refused a container -> refused; the scenario skipped (the runtime is missing here) -> absent;
anything else (another check failed, an error) -> error. The readers read 30 times, 50 ms
apart, and report changes only: three rising counts within 1.5 s, which a writer starved
for a moment under load still gives (three reads 100 ms apart did not, once in a loaded run). The
``rootless podman`` columns are ``--engine podman`` with ``CONTAINER_HOST`` at the rootless
user's socket (``tests.helpers.rootless_podman``, set up by .ci/run). Regenerate
the committed table with ``python -m tests.runtime_table`` (it rewrites docs/runtimes.md
between its markers); tests/integration/test_runtimes.py checks the two agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

from tests.helpers import rootless_podman

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "runtimes"
DOC = ROOT / "docs" / "runtimes.md"
BEGIN, END = "<!-- runtime-table:begin -->", "<!-- runtime-table:end -->"
MECHANISMS = {  # scenario name -> row label
    "matrix-sysv": "System V segment, `ipc: container:`",
    "matrix-posix": "POSIX shm (/dev/shm), `ipc: container:`",
    "matrix-mmap": "file mapped MAP_SHARED on a bind-mounted directory",
}
RUNTIMES = ("runc", "crun", "runsc")
ENGINES = ("docker", "podman", "rootless podman")  # column names; ``target`` says how each is reached


def target(engine: str) -> tuple[str, dict[str, str]]:
    """``--engine`` and the environment that reach column ``engine``: the rootless one is
    Podman with CONTAINER_HOST at the rootless user's socket; the others unset it."""
    env = {k: v for k, v in os.environ.items() if k != "CONTAINER_HOST"}
    if engine == "rootless podman":
        address = rootless_podman()
        if address is None:
            raise RuntimeError("no rootless Podman user here (.ci/run sets up labctl-rootless)")
        return "podman", {**env, "CONTAINER_HOST": address}
    return engine, env


def cell(result: dict) -> str:
    """One scenario result as a table cell."""
    if result["status"] == "skipped":
        return "absent"
    if result["status"] == "passed":
        return "shared"
    if any("refused" in (c.get("message") or "") for c in result.get("checks", [])) or \
            "refused" in (result.get("message") or ""):
        return "refused"
    failed = {c.get("name") for c in result.get("checks", []) if c.get("status") == "failed"}
    return "not shared" if result["status"] == "failed" and failed == {"shared"} else "error"


def why(result: dict) -> str:
    """What a scenario result's failing checks (or its error) say, for a test's message."""
    said = [f"{c.get('name')}: {c.get('message')}" for c in result.get("checks", []) if c.get("status") != "passed"]
    return "; ".join(said) or str(result.get("message") or result["status"])


def results(engine: str, runtime: str, only: str | None = None) -> list[dict]:
    """The JSON report's scenario results of one run on ``engine`` (a column name) with
    ``--runtime runtime``; ``only``: that scenario alone (``-k``)."""
    name, env = target(engine)
    pick = ["-k", only] if only else []
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", str(DATA), *pick, "--engine", name, "--runtime",
                           runtime, "--format", "json", "--jobs", "3", "-q"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, env=env, check=False)
    if not proc.stdout.strip():
        raise RuntimeError(f"labctl run on {engine} with {runtime} printed no report: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["scenarios"]


def run(engine: str, runtime: str) -> dict[str, str]:
    """scenario name -> cell, from one run on ``engine`` (a column name) with ``--runtime runtime``."""
    return {s["name"]: cell(s) for s in results(engine, runtime)}


def mismatches(engine: str, runtime: str) -> list[str]:
    """One run's cells that differ from the committed table, each with what its failing
    checks said (empty: the column is what the run gives).

    A cell the engine refused where the table says otherwise is run once more on its own and
    counts only when it differs again: the runtimes have rare start races of their own
    (rootless runsc once refused a start with "open /proc/N/oom_score_adj: permission denied"
    in one run of hundreds), which say nothing of what the mechanism shares. Any other
    difference (shared, not shared, error) counts at once. A refusal that the second run did
    not repeat is a warning naming both, so a race that grows common is seen."""
    out = []
    for s in results(engine, runtime):
        got, want = cell(s), committed_cell(s["name"], engine, runtime)
        if got == want:
            continue
        again = next(iter(results(engine, runtime, only=s["name"])), None) if got == "refused" else None
        if again is not None and again["name"] == s["name"] and cell(again) == want:
            warnings.warn(f"{s['name']} on {engine} with {runtime}: the first run said {got} ({why(s)}); "
                          f"run again on its own it said {want}, as docs/runtimes.md does", stacklevel=2)
            continue
        out.append(f"{s['name']} on {engine} with {runtime}: the run says {got}, docs/runtimes.md {want} "
                   f"(regenerate: python -m tests.runtime_table)\n{s['name']}: {why(s)}")
    return out


def measure() -> dict[tuple[str, str, str], str]:
    """(scenario, engine, runtime) -> cell, over every engine and runtime."""
    out = {}
    for engine in ENGINES:
        for runtime in RUNTIMES:
            for name, c in run(engine, runtime).items():
                out[(name, engine, runtime)] = c
    return out


def render(cells: dict[tuple[str, str, str], str]) -> str:
    """The markdown table (between the markers)."""
    cols = [(e, r) for e in ENGINES for r in RUNTIMES]
    head = "| mechanism | " + " | ".join(f"{e} {r}" for e, r in cols) + " |"
    rule = "|---|" + "---|" * len(cols)
    rows = [f"| {label} | " + " | ".join(cells.get((name, e, r), "?") for e, r in cols) + " |"
            for name, label in MECHANISMS.items()]
    return "\n".join([BEGIN, head, rule, *rows, END])


def committed() -> str:
    text = DOC.read_text(encoding="utf-8")
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


def committed_cell(name: str, engine: str, runtime: str) -> str:
    """The committed table's cell for scenario ``name`` on column ``engine runtime``."""
    row = next(ln for ln in committed().splitlines() if ln.startswith(f"| {MECHANISMS[name]} |"))
    col = [f"{e} {r}" for e in ENGINES for r in RUNTIMES].index(f"{engine} {runtime}")
    return [c.strip() for c in row.strip("|").split("|")][1 + col]


def main() -> None:
    table = render(measure())
    text = DOC.read_text(encoding="utf-8")
    DOC.write_text(text.split(BEGIN, 1)[0] + table + text.split(END, 1)[1], encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
