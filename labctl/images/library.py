"""Where labctl's own data lives: the scenario library and the workload sources.

In a wheel (``pip install labctl``) both travel as package data under ``labctl/_data/``
(pyproject.toml maps the top-level ``scenarios/`` and ``images/`` there); in a checkout
or an editable install they are the top-level folders next to the package. Nothing here
touches the engine; :func:`init` copies the library out as a starting point.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import UsageError

PACKAGE = Path(__file__).resolve().parents[1]  # the labctl package folder
PACKAGE_DATA = PACKAGE / "_data"
CHECKOUT = PACKAGE.parent
LOCAL_LIBRARY = "scenarios"  # what `labctl run` looks for in the working directory
SCHEMA_FILE = "scenario.schema.json"
_SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=\S*$", re.M)


def data_root() -> Path:
    """``labctl/_data`` in an installed wheel, else the checkout root."""
    return PACKAGE_DATA if (PACKAGE_DATA / "scenarios").is_dir() else CHECKOUT


def library_dir() -> Path:
    """The built-in scenario library (a folder of ``*.yaml``)."""
    return data_root() / "scenarios"


def images_dir() -> Path:
    """The folder holding ``shmlab/`` (workload sources and Dockerfile)."""
    return data_root() / "images"


@dataclass(frozen=True)
class DefaultPaths:
    """What ``run``/``list`` use when no PATH is given, and a line saying so."""

    paths: list[str]
    note: str


def default_paths(cwd: str | os.PathLike[str] | None = None) -> DefaultPaths:
    """``./scenarios`` when the working directory has one (a checkout, or a folder made by
    ``labctl init``), else the built-in library. Raises UsageError when neither exists."""
    here = Path(cwd) if cwd is not None else Path.cwd()
    if (here / LOCAL_LIBRARY).is_dir():
        return DefaultPaths([LOCAL_LIBRARY], f"scenarios: ./{LOCAL_LIBRARY} (no PATH given)")
    lib = library_dir()
    if not lib.is_dir():
        raise UsageError(f"no PATH given, no ./{LOCAL_LIBRARY} here and no built-in library at {lib}; "
                         "name scenario files or folders")
    note = f"scenarios: the built-in library at {lib} (no PATH given and no ./{LOCAL_LIBRARY} here)"
    if getattr(sys, "frozen", False):
        # the labctl image has no C toolchain to preprocess inline C: its built-in library
        # leaves out the scenarios whose layouts are C text, and says so (headers' layouts
        # travel precomputed)
        files = sorted(lib.glob("*.yaml"))
        usable = [str(f) for f in files if not NEEDS_C.search(f.read_text(encoding="utf-8", errors="replace"))]
        left = len(files) - len(usable)
        if left:
            return DefaultPaths(usable, f"{note}; {left} scenario(s) with layouts read from C left out: this "
                                        "labctl (the image) has no C toolchain, labctl from pip runs them")
    return DefaultPaths([str(lib)], note)


def library_files() -> dict[str, Path]:
    """The library's scenario files by scenario file stem (``sysv-shareable`` -> path)."""
    return {p.stem: p for p in sorted(library_dir().glob("*.yaml"))}


_HEADER = re.compile(r"(header:\s*)([^\s,}]+)")
# a layout read from inline C text: needs the C preprocessor (zig cc -E). A header's layout
# can travel precomputed next to it (labctl.layout.precomputed), the library's all do.
NEEDS_C = re.compile(r"layout:\s*\{\s*c\s*:", re.M)


def _with_headers(text: str, src_dir: Path, out: Path) -> tuple[str, list[Path]]:
    """Copy the C headers a scenario's layouts name into ``out/include/`` and point the
    copied scenario at them (``header: ../images/sensor/sensor.h`` -> ``include/sensor.h``)."""
    written: list[Path] = []

    def copy(m: re.Match[str]) -> str:
        header = (src_dir / m.group(2)).resolve()
        if not header.is_file():
            return m.group(0)
        dest = out / "include" / header.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(header.read_bytes())
        written.append(dest)
        layout = Path(f"{header}.layout.json")  # its precomputed layouts, for a labctl without zig
        if layout.is_file():
            (out / "include" / layout.name).write_bytes(layout.read_bytes())
            written.append(out / "include" / layout.name)
        return f"{m.group(1)}include/{header.name}"

    return _HEADER.sub(copy, text), written


_PROFILE = re.compile(r"seccomp=([^\s,\]]+)")


def _with_profiles(text: str, src_dir: Path, out: Path) -> list[Path]:
    """Copy the seccomp profiles a scenario names (``seccomp=seccomp/x.json``, relative to
    it) to the same relative place under ``out``."""
    written: list[Path] = []
    for m in _PROFILE.finditer(text):
        rel = m.group(1)
        src = src_dir / rel
        if rel == "unconfined" or os.path.isabs(rel) or not src.is_file():
            continue
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
        if dest not in written:
            written.append(dest)
    return written


def init(dest: str | os.PathLike[str], names: list[str] | None = None, *, force: bool = False,
         schema_json: str | None = None) -> list[Path]:
    """Copy the library (or the scenarios ``names``, by file stem) into folder ``dest``,
    creating it; returns the files written. The editor comment of each file is pointed at
    ``dest/scenario.schema.json``, which is written too when ``schema_json`` is given.

    Raises UsageError for an unknown name, or when a file would be overwritten and
    ``force`` is false (nothing is written then).
    """
    available = library_files()
    chosen = list(available) if not names else []
    unknown = []
    for n in names or []:
        stem = Path(n).stem if n.endswith((".yaml", ".yml")) else n
        (chosen.append(stem) if stem in available else unknown.append(n))
    if unknown:
        raise UsageError(f"no scenario named {', '.join(unknown)} in the library (see `labctl list`)")
    out = Path(dest)
    targets = [out / f"{stem}.yaml" for stem in chosen]
    if schema_json is not None:
        targets.append(out / SCHEMA_FILE)
    clashes = [str(t) for t in targets if t.exists()]
    if clashes and not force:
        raise UsageError(f"{', '.join(clashes)} already exist(s); use --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, target in zip(chosen, targets):
        text = available[stem].read_text()
        if schema_json is not None:
            text = _SCHEMA_COMMENT.sub(f"# yaml-language-server: $schema={SCHEMA_FILE}", text, count=1)
        text, headers = _with_headers(text, available[stem].parent, out)
        target.write_text(text)
        written += [target, *headers, *_with_profiles(text, available[stem].parent, out)]
    if schema_json is not None:
        (out / SCHEMA_FILE).write_text(schema_json)
        written.append(out / SCHEMA_FILE)
    return written

