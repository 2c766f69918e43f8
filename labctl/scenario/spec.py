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
from labctl.scenario.model import Expect
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


# --------------------------------------------------------------------------- containers


@dataclass
class ListOf(Spec):
    """A list of ``item``; ``min_items`` at least."""

    item: Spec
    description: str = ""
    min_items: int = 0
    max_items: int = 1000
    min_message: str = ""
    kinds: frozenset[str] = frozenset({"seq"})

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a list"

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        if node.kind != "seq":
            return self._wrong_type(node, path, ctx)
        if len(node.value) < self.min_items:
            ctx.at(node, path, self.min_message or
                   f"needs at least {self.min_items} item{'s' if self.min_items > 1 else ''}")
            return INVALID
        if len(node.value) > self.max_items:
            ctx.at(node, path, f"has {len(node.value)} items (at most {self.max_items})")
            return INVALID
        out = PList(self.item.check(child, f"{path}[{i}]", ctx) for i, child in enumerate(node.value))
        out.node = node
        return out

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            s["minItems"] = self.min_items
        s["maxItems"] = self.max_items
        return self._describe(s)


@dataclass
class DictOf(Spec):
    """A mapping with free keys (matching ``key_pattern``) and values of one spec."""

    value: Spec
    description: str = ""
    key_pattern: str | None = None
    key_hint: str = ""
    min_items: int = 0
    max_items: int = 1000
    kinds: frozenset[str] = frozenset({"map"})

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a mapping"

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        if node.kind != "map":
            return self._wrong_type(node, path, ctx)
        if len(node.value) < self.min_items:
            ctx.at(node, path, f"needs at least {self.min_items} entr{'ies' if self.min_items > 1 else 'y'}")
        if len(node.value) > self.max_items:
            ctx.at(node, path, f"has {len(node.value)} entries (at most {self.max_items})")
            return INVALID
        out = PDict()
        out.node = node
        for key, child in node.value.items():
            if self.key_pattern and not re.search(self.key_pattern, key):
                line, col = node.keys[key]
                ctx.err(line, col, join(path, key), f"invalid name {key!r}: {self.key_hint or self.key_pattern}")
            out[key] = self.value.check(child, join(path, key), ctx)
        return out

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "object", "additionalProperties": self.value.schema()}
        if self.key_pattern:
            s["propertyNames"] = {"pattern": self.key_pattern}
        if self.min_items:
            s["minProperties"] = self.min_items
        s["maxProperties"] = self.max_items
        return self._describe(s)


@dataclass
class F:
    """One key of an Obj: its spec and whether it is required."""

    spec: Spec
    required: bool = False


@dataclass
class Obj(Spec):
    """A mapping with fixed keys (unknown ones are errors).

    ``one_of``: exactly one of these keys must be present. ``exclusive``: pairs that may
    not appear together. ``depends``: key -> the key it needs.
    """

    fields: dict[str, F]
    description: str = ""
    one_of: tuple[str, ...] = ()
    one_of_what: str = "key"
    exclusive: tuple[tuple[str, str], ...] = ()
    depends: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset({"map"})

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a mapping"

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        if node.kind != "map":
            return self._wrong_type(node, path, ctx)
        out = PDict()
        out.node = node
        names = list(self.fields)
        for key, child in node.value.items():
            spec = self.fields.get(key)
            if spec is None:
                line, col = node.keys[key]
                ctx.err(line, col, join(path, key), f"unknown key '{key}'" + did_you_mean(key, names))
                continue
            out[key] = spec.spec.check(child, join(path, key), ctx)
        for key, f in self.fields.items():
            if f.required and key not in node.value:
                ctx.at(node, path, f"missing required key '{key}'")
        if self.one_of:
            present = [k for k in self.one_of if k in node.value]
            if not present:
                what = "of" if self.one_of_what == "key" else self.one_of_what + ":"
                ctx.at(node, path, f"needs exactly one {what} {', '.join(self.one_of)}")
            elif len(present) > 1:
                line, col = node.keys[present[1]]
                ctx.err(line, col, join(path, present[1]),
                        f"'{present[0]}' and '{present[1]}' cannot be used together")
        for a, b in self.exclusive:
            if a in node.value and b in node.value:
                line, col = node.keys[b]
                ctx.err(line, col, join(path, b), f"'{a}' and '{b}' cannot be used together")
        for key, needed in self.depends.items():
            if key in node.value and needed not in node.value:
                line, col = node.keys[key]
                ctx.err(line, col, join(path, key), f"'{key}' needs '{needed}'")
        return out

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "type": "object",
            "properties": {k: f.spec.schema() for k, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            s["required"] = required
        if self.one_of:
            s["oneOf"] = [{"required": [k]} for k in self.one_of]
        if self.exclusive:
            s["allOf"] = [{"not": {"required": [a, b]}} for a, b in self.exclusive]
        if self.depends:
            s["dependentRequired"] = {k: [v] for k, v in self.depends.items()}
        for k, v in self.extra.items():
            s[k] = s.get(k, []) + v if isinstance(v, list) else v
        return self._describe(s)


@dataclass
class AnyOf(Spec):
    """The first alternative that accepts the node's kind (and, for scalars, its value)."""

    alternatives: tuple[Spec, ...]
    expected: str = "a value"
    description: str = ""

    @property
    def kinds(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(a.kinds for a in self.alternatives))

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        fits = [a for a in self.alternatives if node.kind in a.kinds]
        if not fits:
            return self._wrong_type(node, path, ctx)
        if len(fits) == 1:
            return fits[0].check(node, path, ctx)
        last: Ctx | None = None
        for alt in fits:
            trial = Ctx(ctx.file)
            value = alt.check(node, path, trial)
            if not trial.errors:
                return value
            last = trial
        if node.kind == "scalar":
            return self._wrong_type(node, path, ctx)
        assert last is not None
        ctx.errors.extend(last.errors)
        return INVALID

    def schema(self) -> dict[str, Any]:
        return self._describe({"anyOf": [a.schema() for a in self.alternatives]})


OPS = ("eq", "ne", "lt", "le", "gt", "ge", "match")


@dataclass
class ExpectT(Spec):
    """An expectation: a bare value (equality) or ``{OP: value}``; converts to model.Expect."""

    value: Spec
    description: str = ""
    expected: str = "a value or a mapping {OP: value}"
    kinds: frozenset[str] = frozenset({"scalar", "map"})

    def _ops(self) -> Obj:
        fields = {op: F(self.value) for op in OPS[:-1]}
        fields["match"] = F(Regex())
        return Obj(fields, one_of=OPS, one_of_what="operator")

    def check(self, node: Node, path: str, ctx: Ctx) -> Any:
        if node.kind == "map":
            before = len(ctx.errors)
            d = self._ops().check(node, path, ctx)
            if len(ctx.errors) > before or d is INVALID or len(d) != 1:
                return INVALID
            op, v = next(iter(d.items()))
            return INVALID if v is INVALID else Expect(op, v)
        if node.kind not in self.value.kinds:
            return self._wrong_type(node, path, ctx)
        v = self.value.check(node, path, ctx)
        return INVALID if v is INVALID else Expect("eq", v)

    def schema(self) -> dict[str, Any]:
        ops = self._ops().schema()
        ops.pop("oneOf")
        ops.update(minProperties=1, maxProperties=1)
        return self._describe({"anyOf": [self.value.schema(), ops]})
