"""YAML values that remember their file and position, for reading a user's stack.

The files are parsed by ``labctl.stack`` (the loader ``labctl check`` uses); ``Y`` is its
Node with the scenario's positions, the tree the importer's readers walk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.errors import ScenarioError, ScenarioErrors
from labctl.scenario.model import Pos
from labctl.scenario.yamlload import decode
from labctl.stack.yamlpos import Node


class Y(Node):
    """A ``labctl.stack`` Node (``value``: ``dict[str, Y]``, ``list[Y]`` or a scalar; ``get``,
    ``is_map``, ``is_seq``, ``plain`` as there) whose positions are the scenario's ``Pos``:
    ``pos`` where the value was written, ``at(key)`` where a mapping key was
    (``key_positions``: each key's own ``Pos``, also of a mapping the importer builds)."""

    __slots__ = ("pos", "key_positions")

    def __init__(self, value: Any, pos: Pos, keys: dict[str, Pos] | None = None) -> None:
        super().__init__(value, pos.file, pos.line, pos.col)
        self.pos = pos
        self.key_positions = keys if keys is not None else {}

    def at(self, key: str) -> Pos:
        return self.key_positions.get(key, self.pos)


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
