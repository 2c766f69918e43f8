"""C text for pycparser: preprocess with the shipped toolchain, then lower GNU extensions.

``python -m ziglang cc -E -target <abi>`` runs the real preprocessor for the target, so
``#include <stdint.h>``, macros and ``#ifdef __aarch64__`` come out as that target's
compiler sees them. pycparser parses ISO C only; what GNU C adds is lowered here, on the
token stream, keeping every other token at its line and column:

* layout attributes (``packed``, ``aligned(N)``, ``#pragma pack``) become marker members
  (``char __labctl_rec_packed[1];``) or marker typedefs that :mod:`labctl.layout.ctree`
  reads back, so the attribute survives parsing at the struct or member it belongs to;
* attributes that cannot be laid out (``vector_size``, ``mode``, ...) become markers too,
  refused only if the requested struct uses them;
* other attributes, ``__asm__(...)`` and ``__extension__`` are blanked; spelling variants
  (``__restrict``, ``__inline__``, ``__alignof__``) become their ISO keywords.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

from labctl.layout.abi import Abi

PREPROCESS_TIMEOUT_S = 120.0  # zig's first run per target may build its caches
# Included before the user's text: fixed-width types, size_t and bool without ceremony.
PRELUDE = "#include <stdint.h>\n#include <stddef.h>\n#include <stdbool.h>\n"
MARK = "__labctl_"
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+|\n)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
  | (?P<str>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
  | (?P<punct>\.\.\.|->|<<=|>>=|[<>=!+\-*/%&|^]=|&&|\|\||<<|>>|\+\+|--|\#\#|.)
""", re.X | re.S)
_LINEMARK = re.compile(r'^\s*#\s*(?:line\s+)?(\d+)(?:\s+"((?:\\.|[^"\\])*)")?')
_PACK = re.compile(r"^\s*#\s*pragma\s+pack\s*\((.*)\)\s*$")
_RENAME = {
    "__restrict": "restrict", "__restrict__": "restrict", "__inline": "inline", "__inline__": "inline",
    "__const": "const", "__const__": "const", "__volatile": "volatile", "__volatile__": "volatile",
    "__signed": "signed", "__signed__": "signed", "__alignof": "_Alignof", "__alignof__": "_Alignof",
    "__builtin_offsetof": "offsetof",
}
_BLANK = {"__extension__", "__thread", "_Noreturn", "__inline_always__"}
_WITH_PARENS = {"__attribute__", "__attribute", "__asm__", "__asm", "asm", "__declspec"}
# Attributes that change a layout in ways this engine does not model: refused where used.
UNSUPPORTED_ATTRS = {"vector_size", "ext_vector_type", "mode", "scalar_storage_order", "ms_struct",
                     "gcc_struct", "matrix_type"}
# Declared for pycparser so headers mentioning them parse; using one in a struct is refused.
BUILTIN_TYPEDEFS = ("__builtin_va_list", "__int128_t", "__uint128_t")


class PreprocessError(Exception):
    """The preprocessor refused the text (missing include, #error, ...); message has its stderr."""


def available() -> bool:
    """True when ``python -m ziglang`` can run here: not in a frozen labctl (its
    executable is labctl itself) and the ziglang package installed."""
    import importlib.util

    if getattr(sys, "frozen", False):
        return False
    return importlib.util.find_spec("ziglang") is not None


def spawn_preprocess(text: str, abi: Abi, *, include_dir: str) -> subprocess.Popen[str]:
    """Start ``cc -E`` for ``abi`` over :data:`PRELUDE` + ``text`` without waiting (one per ABI,
    in parallel); :func:`finish` collects it. Raises OSError if the compiler cannot start."""
    if getattr(sys, "frozen", False):  # the labctl image: sys.executable is labctl itself
        raise OSError("this labctl is the frozen one of the labctl image, which carries no C toolchain; "
                      "declare the layout as a list of fields, or run labctl installed by pip")
    argv = [sys.executable, "-m", "ziglang", "cc", "-target", abi.zig_target, "-E", "-x", "c",
            "-I", include_dir, "-"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=include_dir)
    proc._labctl_input = PRELUDE + text  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[str]) -> str:
    """Feed, wait for and check a :func:`spawn_preprocess` process."""
    try:
        out, err = proc.communicate(proc._labctl_input, timeout=PREPROCESS_TIMEOUT_S)  # type: ignore[attr-defined]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PreprocessError(f"the preprocessor took more than {PREPROCESS_TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        errs = [re.sub(r"^\S*-stdin\.c:\d+:\d+: ", "", ln) for ln in lines if "error" in ln] or lines
        raise PreprocessError("; ".join(errs[:3]) or f"the preprocessor failed (exit {proc.returncode})")
    return out


# --------------------------------------------------------------------------- lowering


@dataclass
class _Tok:
    kind: str  # ws | id | num | str | punct | dir (a whole directive line)
    text: str
    file: str
    line: int
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    file, line = "<stdin>", 1
    for raw in text.splitlines(keepends=True):
        stripped = raw.lstrip()
        if stripped.startswith("#"):
            out.append(_Tok("dir", raw.rstrip("\n"), file, line, 1))
            out.append(_Tok("ws", "\n", file, line, len(raw)))
            m = _LINEMARK.match(raw)
            if m:
                line = int(m.group(1))
                if m.group(2) is not None:
                    file = m.group(2).encode().decode("unicode_escape")
            else:
                line += 1
            continue
        col = 1
        for m in _TOKEN.finditer(raw):
            kind = m.lastgroup or "punct"
            out.append(_Tok(kind, m.group(), file, line, col))
            col += len(m.group())
        line += 1
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def attribute_items(inner: str) -> list[tuple[str, str | None]]:
    """``packed, __aligned__(8)`` -> [("packed", None), ("aligned", "8")]."""
    items = []
    for part in _split_top(inner):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?$", part, re.S)
        if not m:
            continue
        name = m.group(1)
        if name.startswith("__") and name.endswith("__") and len(name) > 4:
            name = name[2:-2]
        items.append((name, m.group(2).strip() if m.group(2) is not None else None))
    return items


def _markers(items: list[tuple[str, str | None]], scope: str) -> list[str]:
    """Marker declarations for the layout-relevant attributes (scope rec | mem)."""
    out = []
    for name, arg in items:
        if name == "packed":
            out.append(f"char {MARK}{scope}_packed[1];")
        elif name == "aligned":
            out.append(f"char {MARK}{scope}_aligned[({arg})];" if arg else f"char {MARK}{scope}_alignmax[1];")
        elif name in UNSUPPORTED_ATTRS:
            out.append(f"char {MARK}{scope}_unsup_{name}[1];")
    return out


def _pack_value(args: str, stack: list[int | None], cur: int | None) -> int | None:
    parts = [p.strip() for p in args.split(",") if p.strip()]
    if not parts:
        return None
    if parts[0] == "push":
        stack.append(cur)
        return int(parts[-1], 0) if len(parts) > 1 and parts[-1][0].isdigit() else cur
    if parts[0] == "pop":
        return stack.pop() if stack else None
    return int(parts[0], 0) if parts[0][0].isdigit() else cur


class _Frame:
    def __init__(self, record: bool, open_index: int, tok: _Tok) -> None:
        self.record = record
        self.open_index = open_index  # output index just after the '{'
        self.tok = tok  # the token after the '{' (where the line resumes)
        self.decl_start = open_index
        self.decl_tok = tok
        self.commas = 0


def lower(text: str) -> str:
    """GNU C -> ISO C plus marker declarations (see the module docstring)."""
    toks = _tokens(text)
    out: list[str] = []
    inserts: list[tuple[int, str, _Tok]] = []  # (output index, text, token to resume at)
    stack: list[_Frame] = []
    pack_stack: list[int | None] = []
    pack: int | None = None
    pending_record = False  # after struct/union, before its '{' or its end
    pending_attrs: list[tuple[str, str | None]] = []
    tagged = False
    last_closed: _Frame | None = None  # a record whose '}' is the last significant token
    typedef: dict | None = None  # at file scope: {"name": str|None, "attrs": [...]}
    i = 0
    n = len(toks)

    def next_sig(j: int) -> _Tok:
        while j < n and toks[j].kind in ("ws",):
            j += 1
        return toks[j] if j < n else _Tok("ws", "", "", 0, 0)

    while i < n:
        t = toks[i]
        if t.kind == "dir":
            m = _PACK.match(t.text)
            if m:
                pack = _pack_value(m.group(1), pack_stack, pack)
                out.append(" " * len(t.text))  # pycparser must not see pack pragmas mid-struct
            else:
                out.append(t.text)
            i += 1
            continue
        if t.kind == "ws":
            out.append(t.text)
            i += 1
            continue
        if t.kind == "id" and t.text in _WITH_PARENS:
            j = i + 1
            while j < n and toks[j].kind == "ws":
                j += 1
            if j < n and toks[j].text == "(":
                depth, k = 0, j
                while k < n:
                    if toks[k].text == "(":
                        depth += 1
                    elif toks[k].text == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    k += 1
                body = "".join(x.text for x in toks[j:k + 1])
                for x in toks[i:k + 1]:
                    out.append("\n" if x.text == "\n" else " " * len(x.text) if x.kind != "dir" else x.text)
                if t.text.startswith("__attr"):
                    inner = body.strip()[1:-1].strip()
                    inner = inner[1:-1] if inner.startswith("(") and inner.endswith(")") else inner
                    for k2, v in _RENAME.items():
                        inner = re.sub(rf"\b{k2}\b", v, inner)
                    items = attribute_items(inner)
                    _place(items, stack, pending_record, pending_attrs, last_closed, typedef, inserts, toks, k + 1, out)
                i = k + 1
                continue
        # a significant token
        if t.kind == "id" and t.text in _RENAME:
            new = _RENAME[t.text]
            out.append(new + " " * max(0, len(t.text) - len(new)))
        elif t.kind == "id" and t.text in _BLANK:
            out.append(" " * len(t.text))
            i += 1
            continue
        else:
            out.append(t.text)
        closed: _Frame | None = None
        if t.kind == "id" and t.text in ("struct", "union"):
            pending_record, pending_attrs, tagged = True, [], False
        elif t.kind == "id" and pending_record and not tagged:
            tagged = True  # the tag; an identifier after it declares a member or variable
        elif t.kind == "id" and pending_record:
            pending_record = False
            if typedef is not None and not stack:
                typedef["name"] = t.text
        elif t.text == "{":
            nxt = next_sig(i + 1)
            frame = _Frame(pending_record, len(out), nxt)
            if pending_record:
                markers = _markers(pending_attrs, "rec")
                if pack is not None:
                    markers.append(f"char {MARK}rec_pack[{pack}];")
                if markers:
                    inserts.append((len(out), " ".join(markers), nxt))
            stack.append(frame)
            pending_record, pending_attrs = False, []
        elif t.text == "}":
            popped = stack.pop() if stack else None
            closed = popped if popped is not None and popped.record else None
        elif t.text == ";":
            pending_record = False
            if stack and stack[-1].record:
                stack[-1].decl_start = len(out)
                stack[-1].decl_tok = next_sig(i + 1)
                stack[-1].commas = 0
            elif not stack and typedef is not None:
                _typedef_markers(typedef, inserts, len(out), next_sig(i + 1))
                typedef = None
        else:
            pending_record = False
            if t.text == "," and stack and stack[-1].record:
                stack[-1].commas += 1
            elif t.kind == "id" and t.text == "typedef" and not stack:
                typedef = {"name": None, "attrs": []}
            elif t.kind == "id" and typedef is not None and not stack:
                typedef["name"] = t.text
        last_closed = closed
        i += 1
    for index, text_, resume in sorted(inserts, key=lambda x: x[0], reverse=True):
        block = f"\n{text_}\n# {resume.line} \"{_esc(resume.file)}\"\n" + " " * max(0, resume.col - 1)
        out.insert(index, block)
    return "".join(out)


def _typedef_markers(typedef: dict, inserts: list[tuple[int, str, _Tok]], index: int, resume: _Tok) -> None:
    name = typedef["name"]
    decls = []
    for attr, arg in typedef["attrs"] if name else ():
        if attr == "aligned":
            kind, dim = ("aligned", f"({arg})") if arg else ("alignmax", "1")
            decls.append(f"typedef char {MARK}td_{kind}__{name}[{dim}];")
        elif attr in UNSUPPORTED_ATTRS:
            decls.append(f"typedef char {MARK}td_unsup_{attr}__{name}[1];")
    if decls:
        inserts.append((index, " ".join(decls), resume))


def _esc(path: str) -> str:
    return path.replace("\\", "\\\\").replace('"', '\\"')


def _place(items: list[tuple[str, str | None]], stack: list[_Frame], pending_record: bool,
           pending_attrs: list[tuple[str, str | None]], last_closed: _Frame | None, typedef: dict | None,
           inserts: list[tuple[int, str, _Tok]], toks: list[_Tok], after: int, out: list[str]) -> None:
    """Decide what an attribute belongs to and queue its markers."""
    if pending_record:
        pending_attrs.extend(items)
        return
    if last_closed is not None:
        markers = _markers(items, "rec")
        if markers:
            inserts.append((last_closed.open_index, " ".join(markers), last_closed.tok))
        return
    if stack and stack[-1].record:
        frame = stack[-1]
        markers = _markers(items, "mem")
        if markers:
            if frame.commas:
                markers = [f"char {MARK}mem_multi[1];"]
            inserts.append((frame.decl_start, " ".join(markers), frame.decl_tok))
        return
    if not stack and typedef is not None:
        typedef["attrs"].extend(items)
