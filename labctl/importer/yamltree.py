"""YAML values that remember their file and position, for reading a user's stack.

Built on the scenario loader (strict: duplicate keys and object tags refused, merge keys
``<<`` honoured, sizes bounded); adds the file name to every position (``extends`` reads
other files) and splits multi-document streams (Kubernetes manifests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.scenario.model import Pos
from labctl.scenario.yamlload import Node, decode, load_yaml


@dataclass(frozen=True, eq=False)
class Y:
    """A value (``dict[str, Y]``, ``list[Y]`` or a scalar) and where it was written.
    ``keys``: each mapping key's own position."""

    value: Any
    pos: Pos
    keys: dict[str, Pos] = field(default_factory=dict)

    def get(self, key: str) -> Y | None:
        return self.value.get(key) if isinstance(self.value, dict) else None

    def at(self, key: str) -> Pos:
        return self.keys.get(key, self.pos)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def from_node(node: Node, file: str) -> Y:
    """A loaded Node tree as Y values that carry ``file``."""
    pos = Pos(file, node.line, node.col)
    if isinstance(node.value, dict):
        return Y({k: from_node(v, file) for k, v in node.value.items()}, pos,
                 {k: Pos(file, *lc) for k, lc in node.keys.items()})
    if isinstance(node.value, list):
        return Y([from_node(v, file) for v in node.value], pos)
    return Y(node.value, pos)


def read_text(path: str) -> str:
    """The text of ``path`` (``-`` or a /dev/fd pipe included); ScenarioErrors if unreadable."""
    try:
        data = Path(path).read_bytes() if path != "-" else __import__("sys").stdin.buffer.read()
    except OSError as e:
        raise ScenarioErrors([ScenarioError(path, None, None, "", f"cannot read: {e.strerror}")]) from None
    return decode(data, path)


def load_one(text: str, file: str) -> Y:
    """One YAML document whose top level is a mapping."""
    return from_node(load_yaml(text, file), file)


_SEPARATOR = re.compile(r"^---[ \t]*(#.*)?$", re.M)
_CONTENT = re.compile(r"^[ \t]*[^#\s]", re.M)


def load_all(text: str, file: str) -> list[Y]:
    """Every document of a ``---`` separated stream that holds something (comment-only
    documents are skipped). Line numbers stay those of the whole file."""
    docs: list[Y] = []
    starts = [0] + [m.end() for m in _SEPARATOR.finditer(text)]
    ends = [m.start() for m in _SEPARATOR.finditer(text)] + [len(text)]
    for start, end in zip(starts, ends):
        chunk = text[start:end]
        if not _CONTENT.search(chunk) or chunk.strip() in ("...",):
            continue
        pad = "\n" * text.count("\n", 0, start)  # keep the file's line numbers
        docs.append(load_one(pad + chunk, file))
    return docs
