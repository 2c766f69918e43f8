"""The layout engine against the compiler itself, for every ABI labctl targets.

For each struct the engine lays out, a C file of ``_Static_assert``s on ``offsetof``,
``sizeof`` and ``_Alignof`` (every member, nested members and array elements) is
compiled with ``python -m ziglang cc -target <abi> -fsyntax-only``: the compiler of
that target checks our numbers at compile time, so aarch64 needs no emulator. A
failing assert names the struct and path. Needs ziglang (a labctl dependency), no engine.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.layout import DEFAULT_ABIS, ABIS, Layout, LayoutError, from_c, from_header
from labctl.layout.laid_out import Array, CType, Record

DATA = Path(__file__).resolve().parent.parent / "data" / "layouts"
HEADER = DATA / "abi_structs.h"
STRUCTS = [
    "all_ints", "fixed", "floats", "pointers", "enums", "arrays", "nested", "packed_front", "packed_back",
    "packed_member", "packed_aligned", "aligned_member", "aligned_struct", "aligned_max", "has_aligned",
    "typedef_aligned", "pragma2", "pragma1", "pragma2b", "after_pack", "flexible", "per_arch", "system_types",
    "uses_typedef", "sized", "zero_width",
]
TYPEDEF_NAMES = {"packed_member"}


def _paths(t: CType, prefix: str) -> list[tuple[str, CType]]:
    """Every addressable path below a record: members, nested members, first/last elements."""
    out: list[tuple[str, CType]] = []
    if isinstance(t, Record):
        for m in t.members:
            if m.name is None:
                out += _paths(m.type, prefix)  # anonymous: its members are addressed directly
                continue
            p = f"{prefix}.{m.name}" if prefix else m.name
            out.append((p, m.type))
            out += _paths(m.type, p)
    elif isinstance(t, Array) and t.count:
        for i in sorted({0, t.count - 1}):
            p = f"{prefix}[{i}]"
            out.append((p, t.elem))
            out += _paths(t.elem, p)
    return out


def _offset(rec: Record, path: str) -> int:
    from labctl.layout.laid_out import find_member, parse_path

    t: CType = rec
    off = 0
    for step in parse_path(path):
        if isinstance(step, str):
            assert isinstance(t, Record)
            found = find_member(t, step)
            assert found is not None
            off, t = off + found[0], found[1]
        else:
            assert isinstance(t, Array)
            off, t = off + step * t.elem.size, t.elem
    return off


def _asserts(ctype: str, rec: Record) -> list[str]:
    lines = [f'_Static_assert(sizeof({ctype}) == {rec.size}, "sizeof {ctype} = {rec.size}");',
             f'_Static_assert(_Alignof({ctype}) == {rec.align}, "alignof {ctype} = {rec.align}");']
    for path, t in _paths(rec, ""):
        off = _offset(rec, path)
        lines.append(f'_Static_assert(offsetof({ctype}, {path}) == {off}, "offsetof {ctype} {path} = {off}");')
        if not (isinstance(t, Array) and t.count == 0):
            lines.append(f'_Static_assert(sizeof((({ctype} *)0)->{path}) == {t.size}, '
                         f'"sizeof {ctype} {path} = {t.size}");')
    return lines


def _compile_asserts(abi: str, includes: str, lines: list[str], tmp: Path, env: dict[str, str]) -> None:
    src = tmp / f"asserts-{abi}.c"
    src.write_text(f"{includes}\n#include <stddef.h>\n" + "\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "ziglang", "cc", "-target", ABIS[abi].zig_target, "-c",
            "-Wno-gnu-folding-constant", "-o", str(tmp / f"asserts-{abi}.o"), str(src)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=str(DATA),
                          env=env)
    failed = [ln for ln in proc.stderr.splitlines() if "static assertion failed" in ln or "error" in ln]
    assert proc.returncode == 0, f"{abi}: the compiler disagrees:\n" + "\n".join(failed[:40])


@pytest.mark.parametrize("abi", DEFAULT_ABIS)
def test_header_structs_match_the_compiler(abi: str, tmp_path: Path, zig_env: dict[str, str]) -> None:
    lines = []
    for name in STRUCTS:
        layout = from_header(str(HEADER), name, base_dir="/", abis=(abi,))
        ctype = name if name in TYPEDEF_NAMES else f"struct {name}"
        lines += _asserts(ctype, layout.record(abi))
    assert len(lines) > 300
    _compile_asserts(abi, f'#include "{HEADER}"', lines, tmp_path, zig_env)


def test_per_arch_structs_differ() -> None:
    layout = from_header(str(HEADER), "per_arch", base_dir="/")
    assert layout.leaf("only_arm", "aarch64").size == 12
    assert layout.leaf("only_x86", "x86_64").size == 3
    with pytest.raises(LayoutError, match="no field 'only_arm'"):
        layout.leaf("only_arm", "x86_64")


def test_plain_char_signedness_follows_the_abi() -> None:
    layout = from_c("struct s { char c; signed char s; };", "s", base_dir="/")
    assert layout.leaf("c", "x86_64").kind == "i"
    assert layout.leaf("c", "aarch64").kind == "u"  # plain char is unsigned on ARM
    assert layout.leaf("s", "aarch64").kind == "i"


# --------------------------------------------------------------------------- random structs

_SCALARS = ["char", "signed char", "unsigned char", "short", "unsigned short", "int", "unsigned", "long",
            "unsigned long long", "long long", "float", "double", "_Bool", "int8_t", "uint16_t", "int32_t",
            "uint64_t", "void *", "size_t", "enum small"]


def _random_struct(rng: random.Random, name: str, defined: list[str], depth: int = 0) -> str:
    members = []
    for i in range(rng.randint(1, 7)):
        roll = rng.random()
        if roll < 0.15 and defined:
            t = rng.choice(defined)
        elif roll < 0.22 and depth < 2:
            inner = _random_struct(rng, "", defined, depth + 1)
            t = inner
        else:
            t = rng.choice(_SCALARS)
        dims = "".join(f"[{rng.randint(1, 4)}]" for _ in range(rng.choice([0, 0, 0, 1, 2])))
        attr = ""
        if rng.random() < 0.1:
            attr = f" __attribute__((aligned({rng.choice([1, 2, 4, 8, 16])})))"
        elif rng.random() < 0.08:
            attr = " __attribute__((packed))"
        members.append(f"{t} m{i}{dims}{attr};")
    kind = "union" if rng.random() < 0.15 else "struct"
    head = f"{kind} {name}" if name else kind
    tail = " __attribute__((packed))" if rng.random() < 0.2 else ""
    return f"{head} {{ {' '.join(members)} }}{tail}"


def _random_header(seed: int, count: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    decls = ["enum small { S_A, S_B };"]
    names: list[str] = []
    for k in range(count):
        name = f"r{k}"
        body = _random_struct(rng, name, names)
        if rng.random() < 0.15:
            decls.append(f"#pragma pack(push, {rng.choice([1, 2, 4])})\n{body};\n#pragma pack(pop)")
        else:
            decls.append(body + ";")
        names.append(f"{body.split(' ', 1)[0]} {name}")
    return "#include <stdint.h>\n#include <stddef.h>\n" + "\n".join(decls) + "\n", names


@pytest.mark.parametrize("abi", DEFAULT_ABIS)
def test_random_structs_match_the_compiler(abi: str, tmp_path: Path, zig_env: dict[str, str]) -> None:
    text, names = _random_header(seed=20261130, count=60)
    header = tmp_path / "random.h"
    header.write_text(text)
    lines = []
    for name in names:
        layout = from_header(str(header), name.split()[1], base_dir="/", abis=(abi,))
        lines += _asserts(name, layout.record(abi))
    _compile_asserts(abi, f'#include "{header}"', lines, tmp_path, zig_env)


def test_layout_objects_are_per_abi() -> None:
    layout = from_c("struct s { char c; long l; };", "s", base_dir="/")
    assert isinstance(layout, Layout)
    assert sorted(layout.abis()) == sorted(DEFAULT_ABIS)
    assert all(layout.size(a) == 16 for a in DEFAULT_ABIS)
