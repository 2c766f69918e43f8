"""Integer constant expressions in C declarations: array sizes, alignments, enumerators.

Enough of C's constant arithmetic for headers (literals with suffixes, character
constants, enumerators, sizeof/_Alignof of a type, offsetof, casts, ?:), with C's
truncating division. Anything else is refused with its position.
"""

from __future__ import annotations

from typing import Any

from pycparser import c_ast  # type: ignore[import-untyped]

from labctl.layout.laid_out import Array, CType, LayoutError, Record, find_member, parse_path


def _where(node: Any) -> str:
    c = getattr(node, "coord", None)
    if c is None or not getattr(c, "file", None):
        return ""
    return f"{c.file}:{c.line}:{c.column}" if c.column else f"{c.file}:{c.line}"


def evaluate(node: Any, types: Any) -> int:
    """An integer constant expression (array sizes, alignments, enumerator values), with
    ``types`` (a ctree.Types) for sizeof, _Alignof, offsetof and enumerators."""
    if isinstance(node, c_ast.Constant):
        return _literal(node)
    if isinstance(node, c_ast.ID):
        if node.name in types.enumerators:
            enum, i = types.enumerators[node.name]
            return types.enum_values(enum)[i][1]
        raise LayoutError(f"'{node.name}' is not a constant", _where(node))
    if isinstance(node, c_ast.UnaryOp):
        if node.op == "sizeof":
            if isinstance(node.expr, c_ast.Typename):
                return types.type_of(node.expr).size
            raise LayoutError("sizeof of an expression is not supported (use sizeof(TYPE))", _where(node))
        if node.op in ("_Alignof", "alignof"):
            return types.type_of(node.expr).align
        v = evaluate(node.expr, types)
        ops = {"-": lambda: -v, "+": lambda: v, "~": lambda: ~v, "!": lambda: int(not v)}
        if node.op in ops:
            return ops[node.op]()
    if isinstance(node, c_ast.BinaryOp):
        a, b = evaluate(node.left, types), evaluate(node.right, types)
        return _binary(node, a, b)
    if isinstance(node, c_ast.TernaryOp):
        return evaluate(node.iftrue, types) if evaluate(node.cond, types) else evaluate(node.iffalse, types)
    if isinstance(node, c_ast.Cast):
        return evaluate(node.expr, types)
    if isinstance(node, c_ast.FuncCall) and isinstance(node.name, c_ast.ID) and node.name.name == "offsetof":
        t, member = node.args.exprs
        rec = types.type_of(t)
        if isinstance(rec, Record):
            return _offset_of(rec, _designator(member))
    raise LayoutError("not an integer constant expression labctl can evaluate", _where(node))


def _designator(node: Any) -> str:
    if isinstance(node, c_ast.ID):
        return node.name
    if isinstance(node, c_ast.StructRef):
        return f"{_designator(node.name)}.{node.field.name}"
    if isinstance(node, c_ast.ArrayRef) and isinstance(node.subscript, c_ast.Constant):
        return f"{_designator(node.name)}[{_literal(node.subscript)}]"
    raise LayoutError("offsetof with a designator labctl cannot evaluate", _where(node))


def _offset_of(rec: Record, path: str) -> int:
    t: CType = rec
    off = 0
    for step in parse_path(path):
        if isinstance(step, str) and isinstance(t, Record):
            found = find_member(t, step)
            if found is None:
                raise LayoutError(f"offsetof: no member '{step}'")
            off, t = off + found[0], found[1]
        elif isinstance(step, int) and isinstance(t, Array):
            off, t = off + step * t.elem.size, t.elem
        else:
            raise LayoutError(f"offsetof: cannot follow '{path}'")
    return off


def _binary(node: Any, a: int, b: int) -> int:
    op = node.op
    if op in ("/", "%") and b == 0:
        raise LayoutError("division by zero in a constant expression", _where(node))
    if op == "/":
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "%":
        return a - b * _binary(type("N", (), {"op": "/"})(), a, b)
    table = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<<": lambda: a << b, ">>": lambda: a >> b,
        "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b, "&&": lambda: int(bool(a and b)),
        "||": lambda: int(bool(a or b)), "==": lambda: int(a == b), "!=": lambda: int(a != b),
        "<": lambda: int(a < b), ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
    }
    if op not in table:
        raise LayoutError(f"operator {op} in a constant expression", _where(node))
    return table[op]()


_ESC = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11}


def _literal(node: c_ast.Constant) -> int:
    text = node.value
    if node.type == "char" or text.startswith("'"):
        body = text.strip("'")
        if body.startswith("\\x"):
            return int(body[2:], 16)
        if body.startswith("\\") and body[1:].isdigit():
            return int(body[1:], 8)
        if body.startswith("\\"):
            return _ESC.get(body[1:2], 0)
        return ord(body[0]) if body else 0
    if node.type in ("float", "double") or ("." in text and not text.lower().startswith("0x")):
        raise LayoutError(f"a floating constant ({text}) where an integer is needed", _where(node))
    digits = text.rstrip("uUlL")
    low = digits.lower()
    if low.startswith("0x"):
        return int(digits, 16)
    if low.startswith("0b"):
        return int(digits[2:], 2)
    if len(digits) > 1 and digits.startswith("0"):
        return int(digits, 8)
    return int(digits)
