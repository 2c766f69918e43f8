"""Compose variable interpolation, as ``docker compose`` (v2) and ``docker-compose`` 1.29 do it.

``$VAR`` and ``${VAR}``; ``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset);
``${VAR:?message}`` / ``${VAR?message}`` (an error, here exit 2 at the value);
``${VAR:+replacement}`` / ``${VAR+replacement}``; ``$$`` for a literal ``$``. Defaults may
themselves hold ``${...}`` (Compose v2). An unset variable with no default becomes the empty
string, with a note (Compose prints a warning). Values come from the process environment,
which wins over the project's ``.env`` file (``KEY=VALUE`` lines, ``#`` comments, optional
quotes), read from the first Compose file's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from labctl.stack.yamlpos import Node, at

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Interpolator:
    """Substitutes variables in every string scalar of a Compose file's tree."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.unset: dict[str, Node] = {}  # variables used without a value (first use)

    def tree(self, node: Node, path: str = "") -> Node:
        """A copy of ``node`` with every string value interpolated (keys are left as written)."""
        v = node.value
        if isinstance(v, dict):
            return node.replace({k: self.tree(c, f"{path}.{k}" if path else k) for k, c in v.items()})
        if isinstance(v, list):
            return node.replace([self.tree(c, f"{path}[{i}]") for i, c in enumerate(v)])
        if isinstance(v, str) and "$" in v:
            return node.replace(self.text(v, node, path))
        return node

    def text(self, s: str, node: Node, path: str) -> str:
        out, _ = self._expand(s, 0, node, path, None)
        return out

    def _expand(self, s: str, i: int, node: Node, path: str, stop: str | None) -> tuple[str, int]:
        """Expand ``s`` from ``i`` up to an unnested ``stop`` character; (text, index after)."""
        out: list[str] = []
        n = len(s)
        while i < n:
            ch = s[i]
            if stop is not None and ch == stop:
                return "".join(out), i
            if ch != "$":
                out.append(ch)
                i += 1
                continue
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                text, i = self._braced(s, i + 2, node, path)
                out.append(text)
            else:
                m = _NAME.match(s, i + 1)
                if not m:
                    raise at(node, path, f"invalid interpolation format in {s!r}: a '$' must start $VAR or "
                                         "${VAR}; write $$ for a literal '$'")
                out.append(self._value(m.group(0), node))
                i = m.end()
        if stop is not None:
            raise at(node, path, f"invalid interpolation format in {s!r}: missing '}}'")
        return "".join(out), i

    def _braced(self, s: str, i: int, node: Node, path: str) -> tuple[str, int]:
        m = _NAME.match(s, i)
        if not m:
            raise at(node, path, f"invalid interpolation format in {s!r}: expected a variable name after '${{'")
        name, i = m.group(0), m.end()
        if i < len(s) and s[i] == "}":
            return self._value(name, node), i + 1
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if s.startswith(op, i):
                break
        else:
            raise at(node, path, f"invalid interpolation format in {s!r} at '{s[i:i + 2]}'")
        arg, j = self._expand(s, i + len(op), node, path, "}")
        j += 1
        is_set = name in self.env
        value = self.env.get(name, "")
        empty_counts = op.startswith(":")
        missing = (not is_set) or (empty_counts and value == "")
        if op.endswith("-"):
            return (arg if missing else value), j
        if op.endswith("+"):
            return ("" if missing else arg), j
        if missing:  # ? or :?
            detail = arg or f"variable {name} is {'not set' if not is_set else 'empty'}"
            raise at(node, path, f"required variable {name} is missing a value: {detail}")
        return value, j

    def _value(self, name: str, node: Node) -> str:
        if name not in self.env:
            self.unset.setdefault(name, node)
            return ""
        return self.env[name]


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (missing file: none)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def project_env(folder: Path | None, environ: Mapping[str, str] | None = None,
                env_file: Path | None = None) -> dict[str, str]:
    """The interpolation variables of a project in ``folder``: its ``.env`` (or ``env_file``)
    overlaid by the process environment."""
    env: dict[str, str] = {}
    dotenv = env_file if env_file is not None else (folder / ".env" if folder is not None else None)
    if dotenv is not None:
        env.update(read_dotenv(dotenv))
    env.update(os.environ if environ is None else environ)
    return env
