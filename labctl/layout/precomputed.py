"""Layouts read from a C header, computed ahead and shipped next to it, for a labctl that
has no C preprocessor (the labctl image carries no zig).

``include/sensor.h`` may have a sidecar ``include/sensor.h.layout.json``:
``{"header_sha256": HEX, "structs": {NAME: {ABI: RECORD}}}`` with each record laid out
as :func:`labctl.layout.from_header` computes it. It is used only when the preprocessor
cannot run *and* the header's bytes still hash to ``header_sha256``: a header edited after
the sidecar was written is refused, never read by a stale layout. The header must not
include other local headers (their bytes are not hashed); ``<stdint.h>`` and the like are
the target's and fixed per ABI. A unit test recomputes every sidecar of the library.

Regenerate one: ``python -m labctl.layout.precomputed HEADER STRUCT...``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from labctl.layout.laid_out import Array, CType, LayoutError, Member, Record, Scalar

SUFFIX = ".layout.json"


def sidecar(header: str | Path) -> Path:
    """The sidecar file of ``header`` (``x.h`` -> ``x.h.layout.json``)."""
    return Path(f"{header}{SUFFIX}")


def digest(header: str | Path) -> str:
    return hashlib.sha256(Path(header).read_bytes()).hexdigest()


def _dump(t: CType) -> dict[str, Any]:
    if isinstance(t, Scalar):
        out: dict[str, Any] = {"scalar": t.kind, "size": t.size, "align": t.align, "cname": t.cname}
        if t.enum:
            out["enum"] = [list(e) for e in t.enum]
        return out
    if isinstance(t, Array):
        return {"array": _dump(t.elem), "count": t.count, "size": t.size, "align": t.align, "cname": t.cname}
    return {"record": t.kind, "tag": t.tag, "size": t.size, "align": t.align,
            "members": [{"name": m.name, "offset": m.offset, "type": _dump(m.type)} for m in t.members]}


def _load(d: dict[str, Any]) -> CType:
    if "scalar" in d:
        return Scalar(d["scalar"], d["size"], d["align"], d["cname"], tuple((str(n), int(v)) for n, v in d.get("enum", ())))
    if "array" in d:
        return Array(_load(d["array"]), d["count"], d["size"], d["align"], d["cname"])
    return Record(d["record"], d["tag"], tuple(Member(m["name"], m["offset"], _load(m["type"])) for m in d["members"]),
                  d["size"], d["align"])


def lookup(header: str | Path, struct: str, abis: tuple[str, ...]) -> tuple[tuple[str, Record], ...] | None:
    """The records of ``struct`` per ABI from ``header``'s sidecar, or None when there is no
    sidecar, it is stale (the header changed) or lacks the struct or an ABI."""
    path = sidecar(header)
    try:
        doc = json.loads(path.read_text())
        if doc.get("header_sha256") != digest(header):
            return None
        per_abi = doc["structs"][struct]
        out = []
        for abi in abis:
            rec = _load(per_abi[abi])
            if not isinstance(rec, Record):
                return None
            out.append((abi, rec))
        return tuple(out)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compute(header: str | Path, structs: list[str]) -> dict[str, Any]:
    """The sidecar document for ``structs`` of ``header``, computed with the preprocessor
    (raises LayoutError where :func:`labctl.layout.from_header` would)."""
    from labctl.layout import DEFAULT_ABIS, from_header

    header = Path(header).resolve()
    text = header.read_text()
    if any(line.lstrip().startswith("#") and "include" in line and '"' in line for line in text.splitlines()):
        raise LayoutError(f"{header} includes a local header: its layout cannot be shipped precomputed")
    doc: dict[str, Any] = {"header_sha256": digest(header), "structs": {}}
    for struct in structs:
        lay = from_header(str(header), struct, base_dir=str(header.parent), precomputed=False)
        doc["structs"][struct] = {abi: _dump(lay.record(abi)) for abi in DEFAULT_ABIS}
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m labctl.layout.precomputed HEADER STRUCT...", file=sys.stderr)
        return 2
    sidecar(argv[0]).write_text(render(compute(argv[0], argv[1:])))
    print(f"wrote {sidecar(argv[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
