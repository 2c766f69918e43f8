"""Leaf specs and patterns shared by the scenario table (``format_table``) and the check kinds.

Kept apart from ``format_table`` so that a check kind's module can use them without importing
the table that lists every kind.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from labctl.scenario.layout_keys import LAYOUT, field_values_spec  # noqa: F401  (LAYOUT: the kinds import it here)
from labctl.scenario.spec import Int, Leaf, Str
from labctl.scenario.yamlload import Node

CONTAINER_RE = r"^[a-z][a-z0-9-]{0,30}$"
CONTAINER_HINT = "lowercase letters, digits and '-', starting with a letter, at most 31 characters"
EVENT_RE = r"^[a-z][a-z0-9_-]{0,62}$"


def _octal_reader(pattern: str, top: int, invalid: str, decimal: str, out_of_range: str) -> Callable[[Node], int]:
    """A reader of an octal mode (``0666`` as a string or as YAML 1.1's octal int). The
    messages take ``{v!r}`` (a string that is not octal digits matching ``pattern``),
    ``{raw}`` (a decimal int such as 666: almost always a missing leading 0, since YAML 1.1
    reads 0666 as octal but 666 as decimal; or a value above ``top``)."""
    def read(node: Node) -> int:
        v = node.value
        if isinstance(v, str):
            if not re.match(pattern, v):
                raise ValueError(invalid.format(v=v))
            return int(v, 8)
        raw = node.raw or ""
        if v != 0 and re.match(r"^[1-9][0-9]*$", raw):
            raise ValueError(decimal.format(raw=raw))
        if not 0 <= v <= top:
            raise ValueError(out_of_range.format(raw=raw))
        return int(v)
    return read


_octal = _octal_reader(r"^0?[0-7]{3,4}$", 0o7777, "invalid permissions {v!r} (expected octal such as 0666)",
                       "permissions {raw} are decimal; write them in octal with a leading 0 (0{raw})",
                       "permissions out of range: {raw}")
_umask = _octal_reader(r"^0?[0-7]{3}$", 0o777, "invalid umask {v!r} (expected octal such as 0077)",
                       "umask {raw} is decimal; write it in octal with a leading 0 (0{raw})",
                       "umask out of range: {raw} (at most 0777)")


def _key(node: Node) -> int:
    v = node.value
    if isinstance(v, str):
        if re.match(r"^0[xX][0-9a-fA-F]{1,8}$", v):
            return int(v, 16)
        if re.match(r"^[0-9]{1,10}$", v):
            v = int(v)
        else:
            raise ValueError(f"invalid IPC key {v!r} (expected an integer or hex such as 0x4d2)")
    if not -(2**31) <= v < 2**32:
        raise ValueError(f"IPC key {v} out of range (a 32-bit key_t)")
    return int(v)


def _scalar(node: Node) -> Any:
    return node.value


def Ref(description: str = "a container of this file") -> Leaf:
    """A container name (existence is checked after the whole file is read)."""
    return Str(description, pattern=CONTAINER_RE, hint=CONTAINER_HINT, what="container name")


SCALAR = Leaf("a string, number or boolean", (str, int, float, bool),
              {"type": ["string", "number", "boolean"]}, _scalar)
COUNT = Int(maximum=10**9)
PERMS = Leaf("octal permissions such as 0666", (int, str),
             {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 0o7777},
                        {"type": "string", "pattern": r"^0?[0-7]{3,4}$"}]}, _octal)
UMASK = Leaf("an octal umask such as 0077", (int, str),
             {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 0o777},
                        {"type": "string", "pattern": r"^0?[0-7]{3}$"}]}, _umask)
KEY = Leaf("an IPC key (integer or hex string such as 0x4d2)", (int, str),
           {"anyOf": [{"type": "integer", "minimum": -(2**31), "maximum": 2**32 - 1},
                      {"type": "string", "pattern": r"^(0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})$"}]}, _key)

FIELD_VALUES = field_values_spec(SCALAR)
