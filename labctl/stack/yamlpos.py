"""YAML documents as trees of positioned values, for Compose files and Kubernetes manifests.

Unlike the scenario loader (one small document, strict), this reads what users already have:
multi-document streams (``helm template`` output), anchors and merge keys (Compose's
``x-`` blocks), large files. It composes with libyaml's C composer when PyYAML has it (a
1,000-service file in a fraction of a second), never constructs an object from a tag, and
bounds what a hostile file can cost: size (:data:`MAX_BYTES`), nesting, and the number of
values after alias expansion (a "billion laughs" anchor bomb).

Every problem is a :class:`labctl.errors.ScenarioError` located as FILE:LINE:COL.
"""

from __future__ import annotations

import gc
from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor

from labctl.errors import ScenarioError, ScenarioErrors

MAX_BYTES = 5 * 1024 * 1024  # a stack larger than this is generated output gone wrong
MAX_DEPTH = 100
MAX_VALUES = 1_000_000  # values after alias expansion, over all documents of one input (a 5 MB file holds fewer)

_CORE = "tag:yaml.org,2002:"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCTOR = SafeConstructor()


class Node:
    """One value with its position (1-based line and column) in ``file``.

    ``value``: ``dict[str, Node]`` (file order), ``list[Node]``, or a scalar resolved as
    YAML 1.1 ``safe_load`` would (timestamps stay text). ``keys``: each mapping key's own
    position. ``raw``: a scalar's text as written.
    """

    __slots__ = ("value", "file", "line", "col", "keys", "raw")

    def __init__(self, value: Any, file: str, line: int, col: int,
                 keys: dict[str, tuple[int, int]] | None = None, raw: str | None = None) -> None:
        self.value = value
        self.file = file
        self.line = line
        self.col = col
        self.keys = keys if keys is not None else {}
        self.raw = raw

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    def get(self, key: str) -> Node | None:
        """The child at ``key`` of a mapping (None when absent or not a mapping)."""
        return self.value.get(key) if isinstance(self.value, dict) else None

    def key_pos(self, key: str) -> tuple[int, int]:
        """Where ``key`` itself is written (the mapping's own position if unknown)."""
        return self.keys.get(key, (self.line, self.col))

    def plain(self) -> Any:
        """The value with every Node unwrapped."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value

    def replace(self, value: Any) -> Node:
        """A copy at the same position holding ``value``."""
        return Node(value, self.file, self.line, self.col, self.keys, self.raw)

    def __repr__(self) -> str:
        return f"Node({self.value!r} @ {self.file}:{self.line}:{self.col})"


def error(file: str, line: int | None, col: int | None, path: str, message: str) -> ScenarioErrors:
    """One located error, as the exception the CLI turns into exit 2."""
    return ScenarioErrors([ScenarioError(file, line, col, path, message)])


def at(node: Node, path: str, message: str) -> ScenarioErrors:
    """A located error at ``node``."""
    return error(node.file, node.line, node.col, path, message)


def decode(data: bytes, file: str) -> str:
    """Bytes to text; refuses oversized, binary and non-UTF-8 input (exit 2, located)."""
    if len(data) > MAX_BYTES:
        raise error(file, None, None, "", f"file is {len(data)} bytes; labctl check reads at most {MAX_BYTES} "
                                          "bytes per input (split the stream)")
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _pos(data[:nul].decode("utf-8", "replace"), nul)
        raise error(file, line, col, "", "binary file (NUL byte): not YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[:e.start].decode("utf-8", "replace")
        line, col = _pos(prefix, len(prefix))
        raise error(file, line, col, "", f"not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    return text.removeprefix("\ufeff")


def _pos(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_VALUES


def load_documents(text: str, file: str) -> list[Node]:
    """Every non-empty document of ``text`` as a Node tree (a stream may hold several,
    separated by ``---``). Raises ScenarioErrors for syntax errors, object tags, duplicate
    keys, and abuse (depth, alias expansion)."""
    budget = _Budget()
    docs: list[Node] = []
    loader = _Loader(text)
    # The tree is acyclic and lives as long as the check: the cyclic collector's passes over
    # a growing tree would cost more than the parse itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while loader.check_node():
            root = loader.get_node()
            if root is None:
                continue
            if _expanded(root, {}, 0, file) > budget.left:
                raise error(file, root.start_mark.line + 1, root.start_mark.column + 1, "",
                            f"more than {MAX_VALUES} values after expanding aliases (an anchor bomb?)")
            node = _convert(root, file, budget, 0)
            if node.value is None and not node.is_map:
                continue  # an empty document (`---` at the end of helm output)
            docs.append(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        raise error(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None, "",
                    f"YAML syntax error: {msg}") from None
    except yaml.YAMLError as e:
        raise error(file, None, None, "", f"YAML error: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise error(file, None, None, "", "nesting too deep") from None
    finally:
        loader.dispose()
        if collecting:
            gc.enable()
    return docs


def _expanded(node: yaml.Node, memo: dict[int, int], depth: int, file: str) -> int:
    """How many values ``node`` becomes once its aliases are expanded (each shared node is
    counted once per reference, computed once): an anchor bomb is refused before it is built."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > MAX_DEPTH:
        raise error(file, node.start_mark.line + 1, node.start_mark.column + 1, "",
                    f"nesting deeper than {MAX_DEPTH} levels")
    memo[key] = 0  # a recursive alias counts as nothing here; the converter refuses it
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded(k, memo, depth + 1, file) + _expanded(v, memo, depth + 1, file) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded(c, memo, depth + 1, file) for c in node.value)
    else:
        n = 1
    memo[key] = n
    return n


def _convert(node: yaml.Node, file: str, budget: _Budget, depth: int) -> Node:
    budget.left -= 1
    mark = node.start_mark
    if budget.left < 0:
        raise error(file, mark.line + 1, mark.column + 1, "",
                    f"more than {MAX_VALUES} values after expanding aliases (an anchor bomb?)")
    if depth > MAX_DEPTH:
        raise error(file, mark.line + 1, mark.column + 1, "", f"nesting deeper than {MAX_DEPTH} levels")
    line, col = mark.line + 1, mark.column + 1
    tag = node.tag
    if isinstance(node, yaml.MappingNode):
        if tag not in (_CORE + "map",):
            raise error(file, line, col, "", f"YAML tag {tag!r} is not allowed (plain values, lists, mappings)")
        out: dict[str, Node] = {}
        keys: dict[str, tuple[int, int]] = {}
        merged: list[Node] = []
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise error(file, k.start_mark.line + 1, k.start_mark.column + 1, "", "mapping keys must be plain values")
            if k.tag == _CORE + "merge":
                for src in (v.value if isinstance(v, yaml.SequenceNode) else [v]):
                    conv = _convert(src, file, budget, depth + 1)
                    if not conv.is_map:
                        raise at(conv, "", "'<<' merges only mappings")
                    merged.append(conv)
                continue
            key = str(_scalar(k, file))
            if key in keys:
                raise error(file, k.start_mark.line + 1, k.start_mark.column + 1, key,
                            f"duplicate key '{key}' (first at line {keys[key][0]})")
            keys[key] = (k.start_mark.line + 1, k.start_mark.column + 1)
            out[key] = _convert(v, file, budget, depth + 1)
        for src in merged:  # merge keys fill in only what the mapping does not set itself
            for key, value in src.value.items():
                if key not in keys:
                    keys[key] = src.keys[key]
                    out[key] = value
        return Node(out, file, line, col, keys)
    if isinstance(node, yaml.SequenceNode):
        if tag != _CORE + "seq":
            raise error(file, line, col, "", f"YAML tag {tag!r} is not allowed (plain values, lists, mappings)")
        return Node([_convert(c, file, budget, depth + 1) for c in node.value], file, line, col)
    return Node(_scalar(node, file), file, line, col, raw=node.value)


def _scalar(node: yaml.ScalarNode, file: str) -> Any:
    tag = node.tag
    try:
        if tag == _CORE + "null":
            return None
        if tag == _CORE + "bool":
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if tag == _CORE + "int":
            return _CONSTRUCTOR.construct_yaml_int(node)
        if tag == _CORE + "float":
            return _CONSTRUCTOR.construct_yaml_float(node)
    except (ValueError, TypeError, IndexError, yaml.YAMLError):
        return node.value
    if tag in (_CORE + "str", _CORE + "timestamp", _CORE + "binary", _CORE + "value", "!"):
        return node.value
    if tag.startswith(_CORE):
        return node.value
    raise error(file, node.start_mark.line + 1, node.start_mark.column + 1, "",
                f"YAML tag {tag!r} is not allowed (plain values, lists, mappings)")


def walk(node: Node) -> Iterator[Node]:
    """Every node under ``node`` (itself first), depth first."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n.value, dict):
            stack.extend(n.value.values())
        elif isinstance(n.value, list):
            stack.extend(n.value)
