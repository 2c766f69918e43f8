"""The scenario library's handout (``docs/scenarios.md``), rendered from the scenarios.

The handout is generated, not written by hand, so it cannot drift from the library: a
unit test compares the committed file with ``render_markdown`` over ``scenarios/``.
Everything comes from the scenario models: the one-line lesson is the description's
first line; ``Expected:``, ``Fix:`` (or ``Lesson:``) lines of the description give the
expected outcome and the fix; the mode is read from the containers and volumes.
No engine import: this is pure text over ``labctl.scenario.model`` and the check kinds table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import Scenario

# Description markers: a line starting with one of these opens that part.
MARKERS = ("Expected:", "Fix:", "Lesson:")

VOLUME_WORDS = {
    "volume": "named volume",
    "tmpfs-volume": "tmpfs volume",
    "tempdir": "bind-mounted dir",
    "hostdir": "host dir",
}

GENERATED_NOTE = (
    "<!-- Generated from scenarios/ by `labctl list --format markdown > docs/scenarios.md`;"
    " do not edit by hand (tests/unit/test_handout.py checks it is current). -->"
)


@dataclass(frozen=True)
class Lesson:
    """A scenario description taken apart: the one-liner, what happens and why,
    the expected outcome (may be empty) and how to fix it in a real deployment."""

    summary: str
    body: str
    expected: str
    fix: str


def parse_description(text: str) -> Lesson:
    """Split a description into its parts; wrapped lines are joined into one paragraph each."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    summary = lines[0] if lines else ""
    parts: dict[str, list[str]] = {"body": []}
    current = "body"
    for ln in lines[1:]:
        marker = next((m for m in MARKERS if ln.startswith(m)), None)
        if marker is not None:
            current = marker[:-1].lower()
            parts.setdefault(current, [])
            ln = ln[len(marker):].strip()
        parts[current].append(ln)

    def joined(key: str) -> str:
        return " ".join(x for x in parts.get(key, []) if x)

    return Lesson(summary, joined("body"), joined("expected"), joined("fix") or joined("lesson"))


def _size(n: int) -> str:
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def mode(s: Scenario) -> str:
    """How the scenario's containers share (or do not): IPC modes in order of appearance,
    then storage, per-container tmpfs, sysctls, shm_size and uids where they matter."""
    ipcs: list[str] = []
    for c in s.containers:
        m = "container:" if c.ipc_donor else c.ipc
        if m not in ipcs:
            ipcs.append(m)
    out = ["ipc " + " + ".join(ipcs)]
    for v in s.volumes:
        word = VOLUME_WORDS.get(v.type, v.type)
        if word not in out:
            out.append(word)
    if any(m.tmpfs for c in s.containers for m in c.mounts):
        out.append("per-container tmpfs")
    for c in s.containers:
        for key, value in c.sysctls:
            if f"{key}={value}" not in out:
                out.append(f"{key}={value}")
        if c.shm_size and f"shm_size {_size(c.shm_size)}" not in out:
            out.append(f"shm_size {_size(c.shm_size)}")
    users = sorted({c.user for c in s.containers if c.user})
    if users:
        out.append("user " + ", ".join(users))
    for c in s.containers:
        extra = ([f"runtime {c.runtime}"] if c.runtime else []) + \
            [f"seccomp {os.path.basename(o.split('=', 1)[1])}" for o in c.security_opt if o.startswith("seccomp=")] + \
            ([f"/dev/shm {','.join(c.shm_options)}"] if c.shm_options else [])
        out += [x for x in extra if x not in out]
    return ", ".join(out)


def expected(s: Scenario) -> str:
    """The expected outcome: the description's ``Expected:`` line, else the first check's name."""
    lesson = parse_description(s.description)
    text = lesson.expected or (s.checks[0].name if s.checks else "")
    return text.rstrip(".")


def twins(s: Scenario, library: list[Scenario]) -> list[str]:
    """Other library scenarios the description names (a pitfall's fixed twin, a fix's pitfall)."""
    text = s.description
    return [o.name for o in library if o.name != s.name and re.search(rf"(?<![\w-]){re.escape(o.name)}(?![\w-])", text)]


def _md(text: str) -> str:
    # `std::atomic<int>` would otherwise be swallowed as an HTML tag.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _link(s: Scenario) -> str:
    # By file name, not s.file: the handout must not depend on the directory labctl ran from.
    return f"[`{s.name}`](../scenarios/{os.path.basename(s.file)})"


def _anchor(name: str) -> str:
    return "#" + re.sub(r"[^a-z0-9 -]", "", name.lower()).replace(" ", "-")


def render_markdown(scenarios: list[Scenario]) -> str:
    """The whole handout: a table of every scenario, then one section per pitfall."""
    library = sorted(scenarios, key=lambda s: s.name)
    pitfalls = [s for s in library if "pitfall" in s.tags]
    out = [
        "# The scenario library",
        "",
        GENERATED_NOTE,
        "",
        f"{len(library)} scenarios in `scenarios/`, each passing on a real engine: `labctl run` runs them all,",
        "`labctl run --tag pitfall` only the pitfalls, `labctl list` shows the one-line lessons below.",
        "A negative outcome (an errno, a signal, a refusal) is a passing scenario when it is the expected one.",
        "Scenarios tagged `host` need `--allow-host-ipc`.",
        "",
        "| scenario | tags | mode | expected outcome | lesson |",
        "|---|---|---|---|---|",
    ]
    for s in library:
        lesson = parse_description(s.description)
        out.append(f"| {_link(s)} | {_cell(', '.join(s.tags))} | {_cell(mode(s))} | {_cell(expected(s))} | {_cell(lesson.summary)} |")
    out += ["", "## Pitfalls", "",
            "Each pitfall scenario reproduces a failure people hit in production and checks that it really",
            "happens (a check that would fail if the pitfall disappeared); its twin shows the fix working.", ""]
    for s in pitfalls:
        lesson = parse_description(s.description)
        out += [f"### {s.name}", "", f"**{_md(lesson.summary)}**", "",
                f"*Mode:* {mode(s)}. *Expected:* {_md(expected(s))}.", ""]
        if lesson.body:
            out += [f"*Cause:* {_md(lesson.body)}", ""]
        if lesson.fix:
            out += [f"*Fix:* {_md(lesson.fix)}", ""]
        related = twins(s, library)
        if related:
            out += ["*See also:* " + ", ".join(f"[`{n}`]({_anchor(n)})" if any(p.name == n for p in pitfalls)
                                              else f"[`{n}`](../scenarios/{n}.yaml)" for n in related), ""]
    others = [s for s in library if "pitfall" not in s.tags]
    out += ["## The other scenarios", "",
            "Sharing modes, isolation and cleanup, and the fixed twins of the pitfalls.", ""]
    for s in others:
        lesson = parse_description(s.description)
        out += [f"### {s.name}", "", f"**{_md(lesson.summary)}**", "",
                f"*Mode:* {mode(s)}. *Expected:* {_md(expected(s))}.", ""]
        if lesson.body:
            out += [_md(lesson.body), ""]
        if lesson.fix:
            out += [f"*In a real deployment:* {_md(lesson.fix)}", ""]
    out += check_kinds_markdown()
    out += step_actions_markdown()
    return "\n".join(out).rstrip("\n") + "\n"


def check_kinds_markdown() -> list[str]:
    """The handout's closing section: every check kind with its one-line description,
    from the kinds table (``labctl.scenario.kinds.registry.KINDS``)."""
    out = ["## Check kinds", "",
           "What a scenario's `checks:` may state, one kind key per check (docs/scenario.schema.json has every key).", "",
           "| kind | what it checks |", "|---|---|"]
    out += [f"| `{name}` | {_cell(kind.description)} |" for name, kind in KINDS.items()]
    return out + [""]


def step_actions_markdown() -> list[str]:
    """The handout's last section: every step action with its one-line description, from the
    actions table (``labctl.scenario.actions.action_registry.ACTIONS``)."""
    out = ["## Step actions", "",
           "What a `steps:` entry may do besides a check kind, one action key per step.", "",
           "| action | what it does |", "|---|---|"]
    out += [f"| `{name}` | {_cell(action.description)} |" for name, action in ACTIONS.items()]
    return out + [""]
