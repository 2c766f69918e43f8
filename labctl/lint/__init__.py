"""Rules over the IPC topology model (``labctl check``): shared-memory pitfalls in a stack.

Each rule is registered once in :data:`RULES` (see :mod:`labctl.lint.rules`) with its id,
severity, one-line title, cause, fix and the library scenario that shows the pitfall on a
real engine (``scenario``) and its fixed twin (``twin``). ``proof`` says which of the
scenario's renderings carry the trigger (``labctl compose``, ``labctl export k8s``);
``proof_note`` says why one does not. The library test reads these fields.

:func:`run` applies every rule to a topology, drops what ``# labctl: ignore=RULE``
comments and ``ignore`` suppress, and returns located findings in file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from labctl.stack.topology import Loc, Topology

SEVERITIES = ("error", "warning", "note")  # most severe first


@dataclass(frozen=True)
class Hit:
    """What a rule function yields: where, and the message for this case."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class Rule:
    """One pitfall a file can declare. ``check(topology)`` yields Hits."""

    id: str
    severity: str
    title: str
    cause: str
    fix: str
    scenario: str
    twin: str | None
    check: Callable[[Topology], Iterable[Hit]]
    proof: frozenset[str] = frozenset()
    proof_note: str = ""
    applies_to: tuple[str, ...] = ("compose", "k8s")
    twin_in_file: bool = True  # False: the twin's fix is in its program, its file still triggers the rule


@dataclass(frozen=True)
class Finding:
    """A located finding: ``FILE:LINE:COL RULE message``."""

    file: str
    line: int
    col: int
    rule: str
    severity: str
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}:{self.col} {self.rule} {self.message}"


RULES: dict[str, Rule] = {}


def register(*, id: str, severity: str, title: str, cause: str, fix: str, scenario: str, twin: str | None,
             proof: Iterable[str] = (), proof_note: str = "", twin_in_file: bool = True,
             applies_to: tuple[str, ...] = ("compose", "k8s")) -> Callable[[Callable[[Topology], Iterable[Hit]]],
                                                                           Callable[[Topology], Iterable[Hit]]]:
    """Decorator adding a rule function to :data:`RULES` (ids are unique)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r}")

    def deco(fn: Callable[[Topology], Iterable[Hit]]) -> Callable[[Topology], Iterable[Hit]]:
        old = RULES.get(id)
        if old is not None and (old.check.__module__, old.check.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"rule {id} registered twice")  # (the same function again: a module re-import)
        RULES[id] = Rule(id, severity, title, " ".join(cause.split()), " ".join(fix.split()), scenario, twin, fn,
                         frozenset(proof), " ".join(proof_note.split()), applies_to, twin_in_file)
        return fn
    return deco


def table() -> dict[str, Rule]:
    """Every rule, by id (importing the rule module on first use)."""
    import importlib

    importlib.import_module("labctl.lint.rules")  # registers

    return RULES


def at_or_above(severity: str, threshold: str) -> bool:
    """``error`` is at or above ``warning``; ``note`` is not."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)


def run(topo: Topology, ignore: Iterable[str] = ()) -> list[Finding]:
    """Every finding of every rule on ``topo``, minus suppressed ones, sorted by position."""
    table_ = table()
    skip = set(ignore)
    found: set[Finding] = set()
    for rule in table_.values():
        if rule.id in skip:
            continue
        for hit in rule.check(topo):
            sup = topo.suppressed.get((hit.loc.file, hit.loc.line), set())
            if rule.id in sup or "all" in sup:
                continue
            found.add(Finding(hit.loc.file, hit.loc.line, hit.loc.col, rule.id, rule.severity, hit.message))
    return sorted(found, key=lambda f: (f.file, f.line, f.col, f.rule, f.message))


def iter_rules() -> Iterator[Rule]:
    yield from table().values()
