"""From a pycparser AST to laid-out types, by the C ABI of one target.

Layout rules (System V / AAPCS64, as GCC and Clang do them for ordinary members):
each member goes at the next multiple of its alignment; a struct's alignment is its
largest member alignment (or more, with ``aligned``) and its size is rounded up to it; a
union's members all sit at 0. ``packed`` makes member alignment 1 (an explicit
``aligned`` on a member still counts); ``#pragma pack(N)`` caps member alignment at N.
Bit-fields, function types, ``void``, ``long double``, complex and vector types, and
incomplete types are refused with the position of the declaration at fault.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pycparser import c_ast, c_parser  # type: ignore[import-untyped]

from labctl.layout import consts
from labctl.layout.abi import Abi
from labctl.layout.cpre import BUILTIN_TYPEDEFS, MARK
from labctl.layout.laid_out import (
    Array, CType, LayoutError, Member, Record, Scalar, did_you_mean,
)

def _where(node: Any) -> str:
    c = getattr(node, "coord", None)
    if c is None or not getattr(c, "file", None):
        return ""
    return f"{c.file}:{c.line}:{c.column}" if c.column else f"{c.file}:{c.line}"


def parse(text: str, filename: str) -> c_ast.FileAST:
    """pycparser over lowered text; a syntax error becomes a LayoutError at its position."""
    prelude = "".join(f"typedef struct {MARK}builtin_{n} {n};\n" for n in BUILTIN_TYPEDEFS)
    try:
        return c_parser.CParser().parse(f'# 1 "<builtin>"\n{prelude}{text}', filename)
    except c_parser.ParseError as e:
        msg = str(e)
        where, _, rest = msg.partition(": ")
        raise LayoutError(f"cannot parse the C text ({rest or msg}); labctl reads ISO C with GNU attributes",
                          where if rest else "") from None


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class Types:
    """The declarations of one translation unit, laid out for ``abi`` on demand."""

    def __init__(self, ast: c_ast.FileAST, abi: Abi) -> None:
        self.abi = abi
        self.typedefs: dict[str, Any] = {}
        self.td_align: dict[str, tuple[int | None, Any]] = {}  # name -> (alignment or None = max, node)
        self.td_unsup: dict[str, str] = {}
        self.tags: dict[tuple[str, str], Any] = {}
        self.enumerators: dict[str, tuple[Any, int]] = {}  # name -> (Enum node, index)
        self._memo: dict[int, CType] = {}
        self._busy: set[int] = set()
        for ext in ast.ext:
            if isinstance(ext, c_ast.Typedef):
                self._typedef(ext)
            self._collect(ext)

    # ----------------------------------------------------------------- declarations

    def _typedef(self, td: c_ast.Typedef) -> None:
        name = td.name
        if name.startswith(f"{MARK}td_"):
            kind, _, target = name[len(MARK) + 3:].partition("__")
            if kind == "aligned":
                self.td_align[target] = (self.const(td.type.dim), td)
            elif kind == "alignmax":
                self.td_align[target] = (None, td)
            else:
                self.td_unsup[target] = kind[len("unsup_"):]
            return
        self.typedefs[name] = td.type

    def _collect(self, node: Any) -> None:
        if isinstance(node, (c_ast.Struct, c_ast.Union)) and node.decls is not None and node.name:
            self.tags[("struct" if isinstance(node, c_ast.Struct) else "union", node.name)] = node
        if isinstance(node, c_ast.Enum) and node.values is not None:
            if node.name:
                self.tags[("enum", node.name)] = node
            for i, e in enumerate(node.values.enumerators):
                self.enumerators[e.name] = (node, i)
        for _, child in node.children():
            self._collect(child)

    def records(self) -> list[str]:
        """Names a ``struct:`` may give: struct/union tags and typedefs of records."""
        names = [tag for (kind, tag) in self.tags if kind != "enum"]
        for name, t in self.typedefs.items():
            inner = t.type if isinstance(t, c_ast.TypeDecl) else None
            if isinstance(inner, (c_ast.Struct, c_ast.Union)) and name not in names:
                names.append(name)
        return names

    def find(self, name: str) -> Record:
        """The struct (or union, or typedef of one) called ``name``, laid out."""
        node = self.tags.get(("struct", name)) or self.tags.get(("union", name))
        t: CType | None = None
        if node is not None:
            t = self.type_of(node)
        elif name in self.typedefs:
            t = self.type_of(self.typedefs[name])
            if not isinstance(t, Record):
                raise LayoutError(f"'{name}' is {t.cname}, not a struct or union")
        if t is None:
            raise LayoutError(f"no struct '{name}' in the C text" + did_you_mean(name, self.records()))
        assert isinstance(t, Record)
        return dataclasses.replace(t, tag=t.tag or name)

    # ----------------------------------------------------------------- types

    def type_of(self, node: Any) -> CType:
        """The laid-out type of a type node (TypeDecl, PtrDecl, ArrayDecl, Struct, ...)."""
        key = id(node)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            raise LayoutError("a struct that contains itself cannot be laid out", _where(node))
        self._busy.add(key)
        try:
            t = self._type_of(node)
        finally:
            self._busy.discard(key)
        self._memo[key] = t
        return t

    def _type_of(self, node: Any) -> CType:
        if isinstance(node, (c_ast.TypeDecl, c_ast.Typename)):
            return self.type_of(node.type)
        if isinstance(node, c_ast.PtrDecl):
            size, align = self.abi.size_align("pointer")
            return Scalar("u", size, align, "pointer")
        if isinstance(node, c_ast.ArrayDecl):
            elem = self.type_of(node.type)
            count = 0 if node.dim is None else self.const(node.dim)
            if count < 0:
                raise LayoutError(f"negative array size {count}", _where(node))
            if elem.size == 0:
                raise LayoutError(f"array of {elem.cname}, which has no size", _where(node))
            base, dims = (elem.cname.split("[", 1) + [""])[:2]
            cname = f"{base}[{count}]" + (f"[{dims}" if dims else "")
            return Array(elem, count, count * elem.size, elem.align, cname)
        if isinstance(node, c_ast.FuncDecl):
            raise LayoutError("a function type cannot be laid out (a pointer to one can)", _where(node))
        if isinstance(node, c_ast.IdentifierType):
            return self._named(node)
        if isinstance(node, (c_ast.Struct, c_ast.Union)):
            kind = "struct" if isinstance(node, c_ast.Struct) else "union"
            if node.decls is None:
                full = self.tags.get((kind, node.name))
                if full is None:
                    what = node.name.replace(f"{MARK}builtin_", "") if node.name.startswith(MARK) else \
                        f"{kind} {node.name}"
                    raise LayoutError(f"{what} is an incomplete type (declared, never defined)", _where(node))
                return self.type_of(full)
            return self._record(node, kind)
        if isinstance(node, c_ast.Enum):
            return self._enum(node)
        raise LayoutError(f"cannot lay out {type(node).__name__}", _where(node))

    def _named(self, node: c_ast.IdentifierType) -> CType:
        names = list(node.names)
        if len(names) == 1 and names[0] in self.typedefs:
            name = names[0]
            if name in self.td_unsup:
                raise LayoutError(f"typedef '{name}' has __attribute__(({self.td_unsup[name]})), which labctl "
                                  "cannot lay out", _where(node))
            t = self.type_of(self.typedefs[name])
            if name in self.td_align:
                value, _ = self.td_align[name]
                t = dataclasses.replace(t, align=self.abi.max_align if value is None else value)
            return t
        base = _base_name(names)
        if base is None:
            raise LayoutError(f"unknown type '{' '.join(names)}'", _where(node))
        if base in ("void",):
            raise LayoutError("void has no size", _where(node))
        if base in ("long double", "complex"):
            raise LayoutError(f"{base} is not supported (its format differs between architectures); "
                              "store a double", _where(node))
        size, align = self.abi.size_align(base)
        if base == "_Bool":
            return Scalar("b", size, align, "_Bool")
        if base in ("float", "double"):
            return Scalar("f", size, align, base)
        signed = not base.startswith("unsigned") and (base != "char" or self.abi.char_signed)
        return Scalar("i" if signed else "u", size, align, base)

    def _enum(self, node: c_ast.Enum) -> Scalar:
        if node.values is None:
            full = self.tags.get(("enum", node.name))
            if full is None:
                raise LayoutError(f"enum {node.name} is an incomplete type", _where(node))
            node = full
        values = self.enum_values(node)
        lo, hi = min((v for _, v in values), default=0), max((v for _, v in values), default=0)
        if lo < 0:
            base = "int" if lo >= -(2**31) and hi < 2**31 else "long long"
        else:
            base = "unsigned int" if hi < 2**32 else "unsigned long long"
        size, align = self.abi.size_align(base)
        cname = f"enum {node.name}" if node.name else "enum"
        return Scalar("i" if lo < 0 else "u", size, align, cname, tuple(values))

    def enum_values(self, node: c_ast.Enum) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        nxt = 0
        for e in node.values.enumerators:
            nxt = self.const(e.value) if e.value is not None else nxt
            out.append((e.name, nxt))
            nxt += 1
        return out

    def _record(self, node: Any, kind: str) -> Record:
        packed = False
        rec_align = 1
        pack: int | None = None
        m_packed, m_align, m_bad = False, 0, ""
        members: list[Member] = []
        cur = 0
        size = 0
        decls = [d for d in node.decls if isinstance(d, c_ast.Decl)]
        for idx, d in enumerate(decls):
            name = d.name or ""
            if name.startswith(f"{MARK}rec_"):
                what = name[len(MARK) + 4:]
                if what == "packed":
                    packed = True
                elif what == "aligned":
                    rec_align = max(rec_align, self.const(d.type.dim))
                elif what == "alignmax":
                    rec_align = max(rec_align, self.abi.max_align)
                elif what == "pack":
                    pack = self.const(d.type.dim)
                else:
                    raise LayoutError(f"{kind} has __attribute__(({what[len('unsup_'):]})), which labctl cannot "
                                      "lay out", _where(node))
                continue
            if name.startswith(f"{MARK}mem_"):
                what = name[len(MARK) + 4:]
                if what == "packed":
                    m_packed = True
                elif what == "aligned":
                    m_align = max(m_align, self.const(d.type.dim))
                elif what == "alignmax":
                    m_align = max(m_align, self.abi.max_align)
                else:
                    m_bad = what
                continue
            where = _where(d)
            if m_bad == "multi":
                raise LayoutError("an attribute in a declaration of several members: declare them one per line",
                                  where)
            if m_bad:
                raise LayoutError(f"member '{name}' has __attribute__(({m_bad[len('unsup_'):]})), which labctl "
                                  "cannot lay out", where)
            if d.bitsize is not None and d.name is None and self.const(d.bitsize) == 0:
                # `int :0` (musl's struct timespec has them): pad to the type's boundary
                zalign = self.type_of(d.type).align
                if kind == "struct":
                    cur = _align_up(cur, zalign)
                    size = max(size, cur)
                if self.abi.zero_width_aligns:
                    rec_align = max(rec_align, zalign)
                continue
            if d.bitsize is not None:
                raise LayoutError(f"bit-field '{name}' cannot be laid out portably (its bits' order is the "
                                  "compiler's choice); use a whole integer and masks", where)
            anonymous = d.name is None
            if anonymous and not isinstance(d.type, (c_ast.Struct, c_ast.Union)):
                continue  # `int;` declares nothing
            try:
                t = self.type_of(d.type)
            except LayoutError as e:
                raise LayoutError(e.reason if not name else f"member '{name}': {e.reason}", e.where or where) from None
            explicit = m_align
            for al in d.align or ():
                a = al.alignment
                explicit = max(explicit, self.type_of(a).align if isinstance(a, c_ast.Typename) else self.const(a))
            align = 1 if (packed or m_packed) else t.align
            align = max(align, explicit)
            if pack is not None:
                align = min(align, pack)
            if isinstance(t, Array) and t.count == 0 and (kind != "struct" or idx != len(decls) - 1):
                raise LayoutError(f"'{name}' has no length and is not the last member", where)
            off = 0 if kind == "union" else _align_up(cur, align)
            members.append(Member(None if anonymous else name, off, t))
            cur = off + t.size
            size = max(size, cur)
            rec_align = max(rec_align, align)
            m_packed, m_align, m_bad = False, 0, ""
        if not members:
            raise LayoutError(f"{kind} {node.name or ''} has no members to lay out".replace("  ", " "), _where(node))
        return Record(kind, node.name or "", tuple(members), _align_up(size, rec_align), rec_align)

    # ----------------------------------------------------------------- constants

    def const(self, node: Any) -> int:
        """An integer constant expression (sizes, alignments, enumerator values)."""
        return consts.evaluate(node, self)


def _base_name(names: list[str]) -> str | None:
    """Normalise a list of type keywords (``unsigned long int``) to a BASE_TYPES name."""
    words = [w for w in names if w not in ("const", "volatile", "restrict", "_Atomic")]
    if "_Complex" in words or "_Imaginary" in words:
        return "complex"
    unsigned = "unsigned" in words
    signed = "signed" in words
    longs = words.count("long")
    rest = [w for w in words if w not in ("unsigned", "signed", "long", "int")]
    if rest == ["char"]:
        return "unsigned char" if unsigned else "signed char" if signed else "char"
    if rest == ["short"]:
        return "unsigned short" if unsigned else "short"
    if rest == ["double"]:
        return "long double" if longs else "double"
    if rest in (["float"], ["_Bool"], ["void"]) and not (unsigned or signed or longs):
        return rest[0]
    if rest:
        return None
    if longs == 0:
        return "unsigned int" if unsigned else "int"
    base = "long" if longs == 1 else "long long"
    return f"unsigned {base}" if unsigned else base
