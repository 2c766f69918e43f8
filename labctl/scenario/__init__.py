"""Scenario files: strict YAML loading, validation into the model, discovery, JSON Schema.

No engine import here: ``labctl validate`` runs exactly this, without Docker.
"""

from __future__ import annotations

import os

from labctl.errors import ScenarioError, ScenarioErrors, UsageError
from labctl.scenario.model import Scenario
from labctl.scenario.validate import sort_errors, validate_tree
from labctl.scenario.yamlload import MAX_BYTES, Node, decode, load_yaml, too_big

__all__ = ["discover", "load_all", "load_file", "load_text"]

SUFFIXES = (".yaml", ".yml")


def load_text(text: str, file: str = "<string>", *, base_dir: str | None = None) -> Scenario:
    """Validate scenario text; ``file`` names it in messages and locates hostdir paths.

    Raises ScenarioErrors (every problem found, sorted by position).
    """
    return validate_tree(load_yaml(text, file), file, base_dir)


def load_file(path: str) -> Scenario:
    """Read and validate one scenario file. Raises ScenarioErrors."""
    return _load_file(path)[0]


def _load_file(path: str) -> tuple[Scenario, Node]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise too_big(path, size)
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ScenarioErrors([ScenarioError(path, None, None, "", f"cannot read: {e.strerror or e}")]) from None
    tree = load_yaml(decode(data, path), path)
    return validate_tree(tree, path), tree


def _library_file(name: str) -> str | None:
    """The file of the scenario ``name`` where ``labctl list`` with no PATH looks
    (``default_paths``: ``./scenarios`` when there is one, else the built-in library)."""
    from labctl.images.library import default_paths

    if not name or os.sep in name or name.startswith(".") or name.endswith(SUFFIXES):
        return None
    try:
        where = default_paths().paths
    except UsageError:  # neither exists
        return None
    for p in where:
        files = [os.path.join(p, name + suffix) for suffix in SUFFIXES] if os.path.isdir(p) else [p]
        for f in files:
            if os.path.isfile(f) and os.path.splitext(os.path.basename(f))[0] == name:
                return f
    return None


def discover(paths: list[str]) -> list[str]:
    """Scenario files named by ``paths``: files as given, folders searched for *.yaml/*.yml,
    and a library scenario's name (``labctl list``) for its file when no such path exists.

    Folders are walked recursively and sorted; hidden entries are skipped. A missing
    path raises UsageError.
    """
    out: list[str] = []
    for given in paths:
        p = given if os.path.exists(given) else (_library_file(given) or given)
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, f) for f in files
                          if f.endswith(SUFFIXES) and not f.startswith(".")]
            out += sorted(found)
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise UsageError(f"no such file or directory: {p} (give scenario files, folders of them or the "
                             "name of a library scenario: `labctl list` shows them, `labctl run` with no path runs "
                             "them all)")
    unique: dict[str, str] = {}
    for p in out:
        unique.setdefault(os.path.abspath(p), p)  # a file named twice runs once
    return list(unique.values())


def load_all(paths: list[str]) -> list[Scenario]:
    """Load every scenario under ``paths``; collect errors across files.

    Scenario names must be unique across the files. Raises ScenarioErrors or UsageError.
    """
    scenarios: list[Scenario] = []
    errors: list[ScenarioError] = []
    files = discover(paths)
    if not files:
        raise UsageError(f"no scenario files (*.yaml, *.yml) in {', '.join(paths)}")
    first: dict[str, Scenario] = {}
    for f in files:
        try:
            s, tree = _load_file(f)
        except ScenarioErrors as e:
            errors += e.errors
            continue
        if s.name in first:
            other = first[s.name]
            where = tree.value["name"]
            errors.append(ScenarioError(f, where.line, where.col, "name",
                                        f"scenario name '{s.name}' is also used by {other.file}"))
            continue
        first[s.name] = s
        scenarios.append(s)
    if errors:
        raise ScenarioErrors(sort_errors(errors))
    return scenarios
