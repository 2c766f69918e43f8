"""Compound specs: lists, free mappings, fixed-key objects, alternatives, expectations.

See ``labctl.scenario.spec`` for the leaves and the shared machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from labctl.scenario.model import Expect
from labctl.scenario.spec import INVALID, Ctx, PDict, PList, Regex, Spec, did_you_mean, join
from labctl.scenario.yamlload import Node

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
