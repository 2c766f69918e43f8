"""Declarative type specs: one description of each key gives both validation and JSON Schema.

A spec checks a :class:`~labctl.scenario.yamlload.Node` and returns the converted value
(mappings as :class:`PDict`, lists as :class:`PList`, both keeping their Node so later
stages can still point at the file) or :data:`INVALID` after recording errors in a
:class:`Ctx`. ``schema()`` gives the JSON Schema (draft 2020-12) fragment of the same spec.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labctl.errors import ScenarioError
from labctl.scenario.yamlload import Node, type_name
from labctl.units import parse_duration, parse_size


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()  # a value that failed its spec (the error is already recorded)


class PDict(dict):  # type: ignore[type-arg]
    """A checked mapping: a dict of converted values that remembers its Node."""

    node: Node


class PList(list):  # type: ignore[type-arg]
    """A checked sequence: a list of converted values that remembers its Node."""

    node: Node


@dataclass
class Ctx:
    """Collects errors for one file."""

    file: str
    errors: list[ScenarioError] = field(default_factory=list)

    def err(self, line: int, col: int, path: str, message: str) -> None:
        """Record ``FILE:LINE:COL: path: message``."""
        self.errors.append(ScenarioError(self.file, line, col, path, message))

    def at(self, node: Node, path: str, message: str) -> None:
        """Record an error at a node's position."""
        self.err(node.line, node.col, path, message)


def join(path: str, key: str) -> str:
    """``containers`` + ``reader`` -> ``containers.reader``."""
    return f"{path}.{key}" if path else key


def _got(node: Node) -> str:
    if node.kind == "scalar" and node.value is not None:
        return f"{type_name(node.value)} {node.raw!r}" if node.raw is not None else type_name(node.value)
    return type_name(node.value)


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close, else ``(expected one of: ...)``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (expected one of: {', '.join(choices)})"


class Spec:
    """Base of all specs. ``kinds`` are the node kinds it may accept."""

    kinds: frozenset[str] = frozenset({"scalar"})
    expected: str  # "an integer", "a mapping"...: how messages name what was wanted
    description: str

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        """Validate ``node``; return the converted value or INVALID (errors go to ctx)."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """This spec as a JSON Schema fragment."""
        raise NotImplementedError

    def _wrong_type(self, node: Node, path: str, ctx: Ctx) -> Any:
        ctx.at(node, path, f"expected {self.expected}, got {_got(node)}")
        return INVALID

    def _describe(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema = {"description": self.description, **schema}
        return schema


# --------------------------------------------------------------------------- leaves


@dataclass
class Leaf(Spec):
    """A scalar checked by ``convert`` (returns the value or raises ValueError(message)).

    ``accept`` lists the Python types the node's value may have; ``json`` is the schema.
    """

    expected: str
    accept: tuple[type, ...]
    json: dict[str, Any]
    convert: Callable[[Node], Any] = lambda n: n.value
    description: str = ""

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        value = node.value
        if node.kind != "scalar" or value is None or not isinstance(value, self.accept) or (
                isinstance(value, bool) and bool not in self.accept):
            return self._wrong_type(node, path, ctx)
        try:
            return self.convert(node)
        except ValueError as e:
            ctx.at(node, path, str(e))
            return INVALID

    def schema(self) -> dict[str, Any]:
        return self._describe(dict(self.json))


def Str(description: str = "", *, pattern: str | None = None, hint: str = "",
        enum: tuple[str, ...] | None = None, what: str = "value", max_len: int = 4096) -> Leaf:
    """A string; optionally matching ``pattern`` (``hint`` explains it) or one of ``enum``."""
    rx = re.compile(pattern) if pattern else None

    def convert(node: Node) -> str:
        s: str = node.value
        if len(s) > max_len:
            raise ValueError(f"too long ({len(s)} characters, at most {max_len})")
        if enum is not None and s not in enum:
            raise ValueError(f"unknown {what} '{s}'" + did_you_mean(s, list(enum)))
        if rx is not None and not rx.search(s):
            raise ValueError(f"invalid {what} {s!r}" + (f": {hint}" if hint else f" (must match {pattern})"))
        return s

    json: dict[str, Any] = {"type": "string", "maxLength": max_len}
    if enum is not None:
        json = {"enum": list(enum)}
    elif pattern:
        json["pattern"] = pattern
    return Leaf("a string", (str,), json, convert, description)


def Text(description: str = "") -> Leaf:
    """Any scalar, kept as the text written (``100`` -> ``"100"``, ``0666`` -> ``"0666"``)."""
    def convert(node: Node) -> str:
        return node.raw if node.raw is not None else str(node.value)

    return Leaf("a string or number", (str, int, float, bool),
                {"type": ["string", "number", "boolean"]}, convert, description)


def Int(description: str = "", *, minimum: int = 0, maximum: int = 2**31 - 1) -> Leaf:
    """An integer in [minimum, maximum]."""
    def convert(node: Node) -> int:
        v: int = node.value
        if v < minimum:
            raise ValueError(f"must be at least {minimum}, got {v}")
        if v > maximum:
            raise ValueError(f"must be at most {maximum}, got {v}")
        return v

    return Leaf("an integer", (int,), {"type": "integer", "minimum": minimum, "maximum": maximum},
                convert, description)


def Bool(description: str = "") -> Leaf:
    """true or false."""
    return Leaf("a boolean (true or false)", (bool,), {"type": "boolean"}, description=description)


DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
SIZE_PATTERN = r"^\s*\d+\s*([kmgKMG][iI]?[bB]?|[bB])?\s*$"


def Duration(description: str = "", *, maximum: float = 86400.0) -> Leaf:
    """``500ms``, ``2s``, ``1.5m`` or a number of seconds, at most ``maximum`` seconds."""
    def convert(node: Node) -> float:
        v = parse_duration(node.value)
        if v > maximum:
            raise ValueError(f"duration {node.raw} is too long (at most {maximum:g}s)")
        return v

    return Leaf("a duration such as 500ms or 2s", (str, int, float), {"anyOf": [
        {"type": "number", "minimum": 0, "maximum": maximum},
        {"type": "string", "pattern": DURATION_PATTERN}]}, convert, description)


def Size(description: str = "", *, maximum: int = 2**40) -> Leaf:
    """``64``, ``64k``, ``64m``, ``1g`` (binary multiples), at most ``maximum`` bytes."""
    def convert(node: Node) -> int:
        v = parse_size(node.value)
        if v > maximum:
            raise ValueError(f"size {node.raw} is too large (at most {maximum} bytes)")
        return v

    return Leaf("a size such as 64m or 1g", (str, int), {"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": maximum},
        {"type": "string", "pattern": SIZE_PATTERN}]}, convert, description)


def Regex(description: str = "") -> Leaf:
    """A Python regular expression (checked by compiling it)."""
    def convert(node: Node) -> str:
        try:
            re.compile(node.value)
        except re.error as e:
            raise ValueError(f"invalid regular expression {node.value!r}: {e}") from None
        return str(node.value)

    return Leaf("a regular expression", (str,), {"type": "string"}, convert, description)
