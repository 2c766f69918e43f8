"""A strict YAML loader for scenario files, built on PyYAML's composer.

PyYAML's ``safe_load`` silently keeps the last of two duplicate keys, loses every
position, and happily expands alias bombs. Scenario files need the opposite, so this
module composes the node graph (no Python object is ever constructed from a tag), then
turns it into a tree of :class:`Node` values that each remember their 1-based line and
column. Scalars are resolved exactly as ``safe_load`` would (YAML 1.1: ``0666`` is 438,
``yes`` is True), except timestamps, which stay strings.

Every problem is a :class:`labctl.errors.ScenarioError`; several at once are raised as
:class:`labctl.errors.ScenarioErrors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import MappingStartEvent, ScalarEvent, SequenceStartEvent

from labctl.errors import ScenarioError, ScenarioErrors

MAX_BYTES = 1024 * 1024  # a scenario is a page of text; anything this large is a mistake
MAX_DEPTH = 64  # nesting levels; real scenarios use fewer than ten
MAX_NODES = 50_000  # values after alias expansion (defeats "billion laughs")

_CORE = "tag:yaml.org,2002:"
# Explicit tags a file may carry: the standard core schema, nothing that constructs objects.
ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}


@dataclass(frozen=True, eq=False)
class Node:
    """One value of the document with its position.

    ``value`` is ``dict[str, Node]`` for a mapping (in file order), ``list[Node]`` for a
    sequence, or a resolved scalar (str, int, float, bool or None). ``raw`` is a scalar's
    text as written (so ``args: [--mode, 0666]`` can keep ``0666``). ``keys`` gives each
    mapping key's own position (errors about a key point at the key, not its value).
    """

    value: Any
    line: int
    col: int
    raw: str | None = None
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``map``, ``seq`` or ``scalar``."""
        if isinstance(self.value, dict):
            return "map"
        if isinstance(self.value, list):
            return "seq"
        return "scalar"

    def plain(self) -> Any:
        """The value with every Node unwrapped (dicts, lists, scalars)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def type_name(value: Any) -> str:
    """How messages name the type of a loaded value."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return "a string"


class _Abort(Exception):
    """Internal: stop composing and report this error."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer bounds nesting and remembers explicit tags."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        event = self.peek_event()
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Abort(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
            tag = getattr(event, "tag", None)
            node = super().compose_node(parent, index)
            if isinstance(event, (ScalarEvent, SequenceStartEvent, MappingStartEvent)) and tag not in (None, "!"):
                # Recorded here, refused while converting (where the key path is known).
                node.labctl_explicit_tag = tag  # type: ignore[union-attr]
            return node
        finally:
            self._depth -= 1


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class _Converter:
    """Turns a composed yaml node graph into Nodes, collecting errors."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ScenarioError] = []
        self.count = 0
        self.constructor = SafeConstructor()

    def err(self, mark: Any, path: str, message: str) -> None:
        self.errors.append(ScenarioError(self.file, mark.line + 1, mark.column + 1, path, message))

    def convert(self, node: yaml.Node, path: str, depth: int) -> Node | None:
        self.count += 1
        mark = node.start_mark
        if self.count > MAX_NODES:
            raise _Abort(mark, f"more than {MAX_NODES} values after expanding aliases (alias bomb?)")
        if depth > MAX_DEPTH:
            # Only reachable through aliases: the composer bounds the written nesting.
            raise _Abort(mark, f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)")
        tag = getattr(node, "labctl_explicit_tag", None)
        if tag is not None and tag not in ALLOWED_TAGS:
            self.err(mark, path, f"YAML tag '{_short_tag(tag)}' is not allowed "
                     "(only plain values, lists and mappings)")
            return None
        line, col = mark.line + 1, mark.column + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth, line, col)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                conv = self.convert(child, f"{path}[{i}]", depth + 1)
                if conv is not None:
                    items.append(conv)
            return Node(items, line, col)
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path, line, col)

    def _scalar(self, node: yaml.ScalarNode, path: str, line: int, col: int) -> Node | None:
        tag = node.tag
        try:
            if tag == _CORE + "null":
                value: Any = None
            elif tag == _CORE + "bool":
                value = self.constructor.construct_yaml_bool(node)
            elif tag == _CORE + "int":
                value = self.constructor.construct_yaml_int(node)
            elif tag == _CORE + "float":
                value = self.constructor.construct_yaml_float(node)
            else:
                # str, plus the implicit timestamp / value / merge tags: kept as text.
                value = node.value
        except (ValueError, TypeError, IndexError, yaml.YAMLError):
            self.err(node.start_mark, path, f"{node.value!r} is not a valid {_short_tag(tag)} value")
            return None
        return Node(value, line, col, raw=node.value)

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int, line: int, col: int) -> Node:
        out: dict[str, Node] = {}
        keys: dict[str, tuple[int, int]] = {}
        merged: dict[str, tuple[Node, tuple[int, int]]] = {}
        for knode, vnode in node.value:
            kmark = knode.start_mark
            if not isinstance(knode, yaml.ScalarNode):
                self.err(kmark, path, "mapping keys must be plain strings")
                continue
            if knode.tag == _CORE + "merge":
                self._merge(vnode, path, depth, merged)
                continue
            key = knode.value
            kpath = f"{path}.{key}" if path else key
            if key in keys:
                first = keys[key][0]
                self.err(kmark, kpath, f"duplicate key '{key}' (first at line {first})")
                continue
            keys[key] = (kmark.line + 1, kmark.column + 1)
            conv = self.convert(vnode, kpath, depth + 1)
            if conv is not None:
                out[key] = conv
        # Merge keys (`<<: *base`) fill in only what the mapping does not set itself.
        for key, (value, pos) in merged.items():
            if key not in keys:
                keys[key] = pos
                out[key] = value
        return Node(out, line, col, keys=keys)

    def _merge(self, vnode: yaml.Node, path: str, depth: int,
               merged: dict[str, tuple[Node, tuple[int, int]]]) -> None:
        sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                self.err(src.start_mark, path, "'<<' merges only mappings")
                continue
            conv = self.convert(src, path, depth + 1)
            if conv is None:
                continue
            for key, value in conv.value.items():
                merged.setdefault(key, (value, conv.keys[key]))


def _pos_of_offset(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def too_big(file: str, size: int) -> ScenarioErrors:
    """The error for a file over MAX_BYTES (checked before reading or parsing it)."""
    return ScenarioErrors([ScenarioError(
        file, None, None, "", f"file is {size} bytes; scenario files are limited to {MAX_BYTES} bytes")])


def decode(data: bytes, file: str) -> str:
    """Bytes of a scenario file to text: refuses oversized, binary and non-UTF-8 input."""
    if len(data) > MAX_BYTES:
        raise too_big(file, len(data))
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _pos_of_offset(data[:nul].decode("utf-8", "replace"), nul)
        raise ScenarioErrors([ScenarioError(file, line, col, "", "binary file (NUL byte): not a YAML scenario")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[:e.start].decode("utf-8", "replace")
        line, col = _pos_of_offset(prefix, len(prefix))
        raise ScenarioErrors([ScenarioError(
            file, line, col, "", f"not valid UTF-8 (byte 0x{data[e.start]:02x}); scenario files must be UTF-8")]) from None
    return text.removeprefix("\ufeff")


def load_yaml(text: str, file: str = "<string>") -> Node:
    """Parse ``text`` into a Node tree whose top level is a mapping.

    Raises ScenarioErrors for syntax errors, forbidden tags, duplicate keys, abuse
    (size, depth, alias expansion) and a top level that is empty or not a mapping.
    """
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as e:
        line, col = _pos_of_offset(text, e.start)
        raise ScenarioErrors([ScenarioError(file, line, col, "", "not valid UTF-8 text")]) from None
    if len(encoded) > MAX_BYTES or "\0" in text:
        decode(encoded, file)  # raises the size / binary error
    text = text.removeprefix("\ufeff")
    conv = _Converter(file)
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            tree = conv.convert(root, "", 0) if root is not None else None
        finally:
            loader.dispose()
    except _Abort as e:
        raise ScenarioErrors([*conv.errors, ScenarioError(
            file, e.mark.line + 1, e.mark.column + 1, "", e.message)]) from None
    except yaml.MarkedYAMLError as e:
        raise ScenarioErrors([_syntax_error(file, e)]) from None
    except yaml.reader.ReaderError as e:
        line, col = _pos_of_offset(text, e.position)
        raise ScenarioErrors([ScenarioError(
            file, line, col, "", f"unacceptable character #x{_ord(e.character):04x} (control characters are not allowed)")]) from None
    except yaml.YAMLError as e:
        raise ScenarioErrors([ScenarioError(file, None, None, "", f"YAML error: {e}")]) from None
    except RecursionError:
        # Belt and braces: the depth bound should stop this first.
        raise ScenarioErrors([ScenarioError(file, None, None, "", "nesting too deep")]) from None
    if conv.errors:
        raise ScenarioErrors(sorted(conv.errors, key=lambda e: (e.line or 0, e.col or 0)))
    if tree is None or (tree.kind == "scalar" and tree.value is None):
        raise ScenarioErrors([ScenarioError(
            file, 1, 1, "", "empty file: expected a scenario mapping (version, name, description, ...)")])
    if tree.kind != "map":
        raise ScenarioErrors([ScenarioError(
            file, tree.line, tree.col, "", f"expected a mapping at the top level, got {type_name(tree.value)}")])
    return tree


def _ord(ch: object) -> int:
    return ord(ch) if isinstance(ch, str) else int(ch)  # type: ignore[call-overload]


def _syntax_error(file: str, e: yaml.MarkedYAMLError) -> ScenarioError:
    mark = e.problem_mark or e.context_mark
    text = " ".join(p for p in (e.context, e.problem) if p)
    message = f"YAML syntax error: {text}" if text else "YAML syntax error"
    if mark is None:
        return ScenarioError(file, None, None, "", message)
    return ScenarioError(file, mark.line + 1, mark.column + 1, "", message)
