"""The ``layout:`` and ``fields:`` keys of segment and file checks.

``layout`` is a built-in name (``conn_stat``), an explicit list of ``{name, offset, type}``,
or a struct from C: ``{header: PATH, struct: NAME}`` (PATH relative to the scenario file)
or ``{c: TEXT, struct: NAME}``. It becomes a :class:`labctl.layout.Layout`, laid out for
every ABI a run may meet; ``fields`` keys are field paths (``count``, ``inner.a``,
``vec[2]``), each checked against the layout and its value against the field's C type
on every ABI, so whatever validates, a run can evaluate. Judging reads the fields a
check names, by the engine's ABI, and fails when the layout does not fit the bytes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from labctl.errors import LabctlError
from labctl.layout import (
    BUILTINS,
    Layout,
    LayoutError,
    Leaf,
    abi_for,
    explicit,
    from_c,
    from_header,
    probe_arg,
    values,
)
from labctl.scenario.builder import get
from labctl.scenario.compound import AnyOf, DictOf, ExpectT, F, ListOf, Obj
from labctl.scenario.model import Expect
from labctl.scenario.spec import INVALID, Ctx, Int, PDict, Spec, Str, join
from labctl.scenario.yamlload import Node

if TYPE_CHECKING:
    from labctl.scenario.builder import Builder

FIELD_TYPE_RE = (r"^(u?int(8|16|32|64)|float|double|bool|cstring\[[1-9][0-9]{0,6}\]|"
                 r"bytes\[[1-9][0-9]{0,6}\])$")
TYPE_HINT = "int8..int64, uint8..uint64, float, double, bool, cstring[N] or bytes[N]"
C_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*$"
DEFAULT_REL_TOL = 1e-6

LAYOUT = AnyOf((
    Str("a built-in layout", enum=tuple(BUILTINS), what="layout"),
    ListOf(Obj({
        "name": F(Str("field name", pattern=r"^[a-z_][a-z0-9_]{0,62}$", what="field name"), True),
        "offset": F(Int("byte offset", maximum=2**40), True),
        "type": F(Str(TYPE_HINT, pattern=FIELD_TYPE_RE, hint=TYPE_HINT, what="field type"), True),
    }, "one field of the layout"), min_items=1, max_items=4096),
    Obj({
        "header": F(Str("a C header, relative to the scenario file", pattern=r"^[^\0]+$", what="header path")),
        "c": F(Str("C declarations (may #include system headers)", max_len=200_000)),
        "struct": F(Str("the struct (or union, or typedef of one) to read", pattern=C_NAME, what="struct name",
                        hint="a C identifier"), True),
    }, "a struct declared in C", one_of=("header", "c")),
), expected="a layout name (conn_stat), a list of {name, offset, type} or {header|c, struct}",
    description="how to decode the bytes: a built-in layout, a list of fields, or a struct from C")


class FieldExpectT(ExpectT):
    """A field expectation: as ExpectT, plus ``{approx: X, tol: T}`` for floats
    (``tol`` defaults to 1e-6 x max(1, |X|))."""

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        if node.kind != "map" or "approx" not in node.value:
            return super().check(node, path, ctx)
        ok = True
        for key in node.value:
            if key not in ("approx", "tol"):
                line, col = node.keys[key]
                ctx.err(line, col, join(path, key), f"unknown key '{key}' next to approx (only tol)")
                ok = False
        nums = {}
        for key in ("approx", "tol"):
            if key in node.value:
                v = node.value[key]
                if v.kind != "scalar" or isinstance(v.value, bool) or not isinstance(v.value, (int, float)) or \
                        (key == "tol" and v.value < 0):
                    ctx.at(v, join(path, key), "expected a number" + (" >= 0" if key == "tol" else ""))
                    ok = False
                else:
                    nums[key] = float(v.value)
        if not ok:
            return INVALID
        x = nums["approx"]
        tol = nums.get("tol", DEFAULT_REL_TOL * max(1.0, abs(x)) if math.isfinite(x) else 0.0)
        return Expect("approx", (x, tol))

    def schema(self) -> dict[str, Any]:
        base = super().schema()
        approx = {"type": "object", "properties": {"approx": {"type": "number"},
                                                   "tol": {"type": "number", "minimum": 0}},
                  "required": ["approx"], "additionalProperties": False}
        base["anyOf"] = [*base["anyOf"], approx]
        return base


def field_values_spec(scalar: Spec) -> DictOf:
    """The ``fields:`` mapping: field path -> expectation."""
    return DictOf(FieldExpectT(scalar), "expected values of layout fields (PATH: VALUE, PATH: {OP: VALUE} or "
                  "PATH: {approx: X, tol: T}); PATH is name, a.b or name[i]", key_pattern=FIELD_PATH,
                  key_hint="a field path such as count, inner.a or vec[2]")


# --------------------------------------------------------------------------- build


def _lines(file: str) -> list[str]:
    try:
        with open(file, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _c_origin(b: Builder, node: Node) -> tuple[int, int]:
    """(first line, column offset) of a ``c:`` scalar's text in the scenario file."""
    lines = _lines(b.ctx.file)
    here = lines[node.line - 1] if 0 < node.line <= len(lines) else ""
    if here[node.col - 1:node.col] in ("|", ">") and node.line < len(lines):
        nxt = lines[node.line]
        return node.line + 1, len(nxt) - len(nxt.lstrip())
    quoted = here[node.col - 1:node.col] in ("'", '"')
    return node.line, node.col - 1 + (1 if quoted else 0)


def build_layout(b: Builder, d: PDict, path: str) -> Layout | None:
    """The ``layout:`` key as a Layout (None when absent or invalid; errors recorded)."""
    raw = get(d, "layout")
    lpath = join(path, "layout")
    if raw is None:
        return None
    if isinstance(raw, str):
        return BUILTINS[raw]
    if isinstance(raw, list):
        items, seen = [], set()
        for i, f in enumerate(raw):
            if not isinstance(f, PDict) or any(get(f, k) is None for k in ("name", "offset", "type")):
                return None
            if f["name"] in seen:
                b.ctx.at(f.node, f"{lpath}[{i}].name", f"duplicate field name '{f['name']}'")
            seen.add(f["name"])
            items.append((f["name"], f["offset"], f["type"]))
        return explicit(items)
    if not isinstance(raw, PDict) or get(raw, "struct") is None:
        return None
    struct = raw["struct"]
    key = "header" if "header" in raw else "c"
    node = raw.node.value[key]
    if get(raw, key) is None:
        return None
    try:
        if key == "header":
            return from_header(raw["header"], struct, base_dir=b.base_dir)
        line, indent = _c_origin(b, node)
        return from_c(raw["c"], struct, base_dir=b.base_dir, file=b.ctx.file, line=line)
    except LayoutError as e:
        at = raw.node.value["struct"] if e.reason.startswith("no struct") else node
        kpath = join(lpath, "struct" if at is not node else key)
        if key == "c" and e.where.startswith(f"{b.ctx.file}:"):
            parts = e.where[len(b.ctx.file) + 1:].split(":")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                b.ctx.err(int(parts[0]), int(parts[1]) + indent, kpath, e.reason)
                return None
        b.ctx.at(at, kpath, str(e))
        return None


def build_fields(b: Builder, d: PDict, path: str, lay: Layout | None) -> tuple[tuple[str, Expect], ...]:
    """The ``fields:`` key: each path must address a readable field of ``lay`` and each
    value suit that field's type, on every ABI the layout was computed for."""
    raw = get(d, "fields", {})
    out = []
    fpath = join(path, "fields")
    for k, v in raw.items():
        if v is INVALID:
            continue
        if lay is None:
            out.append((k, v))
            continue
        line, col = raw.node.keys[k]
        leaves: dict[str, Leaf] = {}
        try:
            for abi in lay.abis():
                leaves[abi] = lay.leaf(k, abi)
        except LayoutError as e:
            where = f" on {abi}" if leaves else ""
            b.ctx.err(line, col, join(fpath, k), f"{e.reason}{where}")
            continue
        try:
            coerced = [values.coerce(leaf, v.op, v.value) for leaf in leaves.values()]
        except LayoutError as e:
            b.ctx.at(raw.node.value[k], join(fpath, k), e.reason)
            continue
        out.append((k, Expect(v.op, coerced[0])))
    return tuple(out)


# --------------------------------------------------------------------------- judge


def engine_abi(arch: str) -> str:
    """The ABI name for an engine architecture; LabctlError for one labctl has no ABI for."""
    try:
        return abi_for(arch).name
    except KeyError:
        raise LabctlError(f"no C ABI for the engine's architecture {arch!r}: layouts cannot be read") from None


def probe_layout(lay: Layout | None, expects: tuple[tuple[str, Expect], ...], abi: str) -> list[str]:
    """``["--layout", ...]`` for the fields a check names, or [] when it names none."""
    if lay is None or not expects:
        return []
    return ["--layout", probe_arg([lay.leaf(p, abi) for p, _ in expects])]


def judge_fields(lay: Layout | None, expects: tuple[tuple[str, Expect], ...], abi: str, got: dict | None,
                 available: Any, what: str) -> tuple[list[str], str]:
    """(mismatches, observed text) for the fields of a segment or file of ``available`` bytes."""
    if lay is None:
        return [], ""
    bad = []
    size = lay.size(abi)
    if isinstance(available, int) and size > available:
        bad.append(f"the layout ({lay.source}) is {size} bytes but the {what} is {available} bytes")
    shown = []
    for p, exp in expects:
        leaf = lay.leaf(p, abi)
        value = values.decode(leaf, (got or {}).get(p))
        shown.append(f"{p}={values.show(leaf, value)}")
        if not exp.holds(value):
            want = exp.describe()
            if leaf.enum and exp.op in ("eq", "ne") and isinstance(exp.value, int):
                want += f" ({values.show(leaf, exp.value).split(' ', 1)[1][1:-1]})"
            bad.append(f"field {p} ({leaf.ctype}): expected {want}, observed {values.show(leaf, value)}")
    return bad, (", fields " + ", ".join(shown)) if shown else ""
