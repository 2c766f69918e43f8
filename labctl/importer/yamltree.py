"""YAML values that remember their file and position, for reading a user's stack.

The files are parsed by ``labctl.stack`` (the loader ``labctl check`` uses); ``Y`` is the
small read-only view of its nodes that the importer's readers walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.scenario.model import Pos
from labctl.scenario.yamlload import decode


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


def from_stack_node(node: Any) -> Y:
    """A ``labctl.stack.yamlpos.Node`` tree (the stack loader's, which carries its file) as Y."""
    pos = Pos(node.file, node.line, node.col)
    if isinstance(node.value, dict):
        return Y({k: from_stack_node(v) for k, v in node.value.items()}, pos,
                 {k: Pos(node.file, *node.key_pos(k)) for k in node.value})
    if isinstance(node.value, list):
        return Y([from_stack_node(v) for v in node.value], pos)
    return Y(node.value, pos)


def read_text(path: str) -> str:
    """The text of ``path`` (``-`` or a /dev/fd pipe included); ScenarioErrors if unreadable."""
    try:
        data = Path(path).read_bytes() if path != "-" else __import__("sys").stdin.buffer.read()
    except OSError as e:
        raise ScenarioErrors([ScenarioError(path, None, None, "", f"cannot read: {e.strerror}")]) from None
    return decode(data, path)
