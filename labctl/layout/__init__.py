"""Memory layouts: how the bytes of a segment or file decode into named fields.

A :class:`Layout` comes from a C header or C text (``{header: PATH, struct: NAME}``,
``{c: TEXT, struct: NAME}``), from an explicit field list, or is built in
(``conn_stat``). C layouts are computed per target ABI (x86_64 and aarch64 now; see
:mod:`labctl.layout.abi`), since ``validate`` does not know the engine a run will use:
a layout is accepted only if it lays out on every ABI, and a check reads it by the
engine's. Fields are addressed by path (``count``, ``inner.a``, ``vec[2]``); each resolves
to a :class:`Leaf` that the probe reads (``shmlab probe --layout PATH:OFFSET:KIND:SIZE,...``).

No engine access here: preprocessing runs ``python -m ziglang cc -E`` locally.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labctl.layout import cpre
from labctl.layout.abi import ABIS, DEFAULT_ABIS, Abi, abi_for
from labctl.layout.laid_out import Array, LayoutError, Leaf, Member, Record, Scalar, member_names, resolve

if TYPE_CHECKING:  # the C parser (pycparser) loads only when a scenario lays out C
    from labctl.layout import ctree

__all__ = [
    "ABIS", "DEFAULT_ABIS", "Abi", "Layout", "LayoutError", "Leaf", "abi_for", "builtin", "explicit",
    "from_c", "from_header", "EXPLICIT_TYPES",
]

ANY_ABI = "*"


@dataclass(frozen=True)
class Layout:
    """A laid-out record per ABI (``*`` when the same on every one). ``source`` says where
    it came from, for messages (``struct conn_stat in include/shared.h``)."""

    source: str
    records: tuple[tuple[str, Record], ...]

    def record(self, abi: str) -> Record:
        """The record for an ABI name (``x86_64``...). Raises LayoutError for one it was
        not computed for."""
        for name, rec in self.records:
            if name in (ANY_ABI, abi):
                return rec
        raise LayoutError(f"{self.source} was not laid out for {abi} "
                          f"(known: {', '.join(n for n, _ in self.records)})")

    def size(self, abi: str) -> int:
        """Bytes the layout spans on ``abi`` (sizeof the struct; for a list, the end of its last field)."""
        return self.record(abi).size

    def leaf(self, path: str, abi: str) -> Leaf:
        """The readable field at ``path`` on ``abi``; LayoutError if there is none."""
        return resolve(self.record(abi), path)

    def names(self, abi: str) -> list[str]:
        """Top-level field names (for hints)."""
        return member_names(self.record(abi))

    def abis(self) -> list[str]:
        return [n for n, _ in self.records]


def probe_arg(leaves: list[Leaf]) -> str:
    """The probe's ``--layout`` value for these leaves."""
    return ",".join(leaf.probe_item() for leaf in leaves)


# --------------------------------------------------------------------------- explicit and built-in

_INTS = {f"{s}int{b}": (("i" if s == "" else "u"), b // 8) for s in ("", "u") for b in (8, 16, 32, 64)}
EXPLICIT_TYPES = tuple(_INTS) + ("float", "double", "bool")  # plus cstring[N], bytes[N]


def explicit_type(name: str) -> Scalar | Array:
    """A type of the explicit list form (``int32``, ``double``, ``cstring[64]``, ``bytes[16]``)."""
    if name in _INTS:
        kind, size = _INTS[name]
        return Scalar(kind, size, size, name)
    if name in ("float", "double"):
        size = 4 if name == "float" else 8
        return Scalar("f", size, size, name)
    if name == "bool":
        return Scalar("b", 1, 1, "_Bool")
    for prefix, elem in (("cstring[", "char"), ("bytes[", "unsigned char")):
        if name.startswith(prefix) and name.endswith("]") and name[len(prefix):-1].isdigit():
            n = int(name[len(prefix):-1])
            if n < 1:
                break
            return Array(Scalar("i" if elem == "char" else "u", 1, 1, elem), n, n, 1, f"{elem}[{n}]")
    raise LayoutError(f"unknown field type {name!r} (int8..int64, uint8..uint64, float, double, bool, "
                      "cstring[N] or bytes[N])")


def explicit(fields: list[tuple[str, int, str]], source: str = "the layout list") -> Layout:
    """A layout from (name, offset, type) triples, the same on every ABI."""
    members = tuple(Member(name, off, explicit_type(t)) for name, off, t in fields)
    size = max((m.offset + m.type.size for m in members), default=0)
    return Layout(source, ((ANY_ABI, Record("layout", "", members, size, 1)),))


def builtin(name: str) -> Layout:
    """A built-in layout by name; KeyError for an unknown one."""
    return BUILTINS[name]


# The tutorial's struct conn_stat { int count; char ip[64]; } (images/shmlab/conn_stat.h),
# identical on every Linux ABI labctl targets.
BUILTINS = {"conn_stat": explicit([("count", 0, "int32"), ("ip", 4, "cstring[64]")], "conn_stat")}


# --------------------------------------------------------------------------- from C


def from_header(path: str, struct: str, *, base_dir: str, abis: tuple[str, ...] = DEFAULT_ABIS,
                precomputed: bool = True) -> Layout:
    """``struct`` from the header at ``path`` (relative to ``base_dir``, the scenario's folder).
    Where no C preprocessor can run (the labctl image), and ``precomputed``, from the
    header's sidecar (:mod:`labctl.layout.precomputed`) if it matches the header's bytes.

    Raises LayoutError: no such file, preprocessing failed, unparseable, no such struct,
    or a member that cannot be laid out (with its FILE:LINE:COL in the header)."""
    full = os.path.abspath(os.path.join(base_dir, path))
    if not os.path.isfile(full):
        raise LayoutError(f"no such header file: {full}")
    if precomputed and not cpre.available():
        from labctl.layout import precomputed as pre

        records = pre.lookup(full, struct, abis)
        if records is None:
            raise LayoutError(f"cannot read struct {struct} from {path}: this labctl has no C preprocessor "
                              f"(python -m ziglang) and {pre.sidecar(path)} is missing, stale or lacks it; "
                              "write it with `python -m labctl.layout.precomputed HEADER STRUCT` where zig runs")
        return Layout(f"struct {struct} in {path}", records)
    mtime = os.stat(full).st_mtime_ns
    text = f'#include "{full}"\n'
    return _compile(text, struct, os.path.dirname(full), abis, f"struct {struct} in {path}", mtime)


def from_c(text: str, struct: str, *, base_dir: str, abis: tuple[str, ...] = DEFAULT_ABIS,
           file: str = "<c>", line: int = 1) -> Layout:
    """``struct`` from C text; positions in messages are ``file:line...`` counting from ``line``."""
    src = f'#line {line} "{file}"\n{text}\n'
    return _compile(src, struct, base_dir, abis, f"struct {struct} in the C text", 0)


def _compile(text: str, struct: str, include_dir: str, abis: tuple[str, ...], source: str,
             mtime: int) -> Layout:
    records = []
    failures: list[tuple[str, LayoutError]] = []
    for name, types in _translation_units(text, include_dir, abis, mtime):
        try:
            if isinstance(types, LayoutError):
                raise types
            records.append((name, types.find(struct)))
        except LayoutError as e:
            failures.append((name, e))
    if failures:
        name, first = failures[0]
        if len(failures) == len(abis) or len(abis) == 1:
            raise first
        raise LayoutError(f"{first.reason} (on {name})", first.where)
    return Layout(source, tuple(records))


@functools.lru_cache(maxsize=32)
def _translation_units(text: str, include_dir: str, abis: tuple[str, ...],
                       _mtime: int) -> tuple[tuple[str, ctree.Types | LayoutError], ...]:
    """Preprocessed (one compiler process per ABI, in parallel) and parsed; cached per text."""
    from labctl.layout import ctree

    procs: list[tuple[Abi, subprocess.Popen[str]]] = []
    try:
        for name in abis:
            abi = ABIS[name]
            procs.append((abi, cpre.spawn_preprocess(text, abi, include_dir=include_dir)))
    except OSError as e:
        for _, p in procs:
            p.kill()
            p.communicate()
        raise LayoutError(f"cannot run the C preprocessor (python -m ziglang): {e}") from e
    out: list[tuple[str, ctree.Types | LayoutError]] = []
    for abi, proc in procs:
        try:
            lowered = cpre.lower(cpre.finish(proc))
            out.append((abi.name, ctree.Types(ctree.parse(lowered, "<preprocessed>"), abi)))
        except cpre.PreprocessError as e:
            out.append((abi.name, LayoutError(f"the C preprocessor failed: {e}")))
        except LayoutError as e:
            out.append((abi.name, e))
    return tuple(out)
