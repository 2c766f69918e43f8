"""Shared state and helpers while one loaded file becomes a Scenario.

Both the container/volume rules (``labctl.scenario.validate``) and every check kind's
builder (``labctl.scenario.kinds``) take a :class:`Builder`; neither imports the other.
"""

from __future__ import annotations

from typing import Any

from labctl.scenario.model import ContainerSpec, Pos
from labctl.scenario.spec import INVALID, Ctx, PDict, did_you_mean
from labctl.scenario.yamlload import Node


def pos_of(ctx: Ctx, node: Node) -> Pos:
    """The model Pos of a node."""
    return Pos(ctx.file, node.line, node.col)


def get(d: Any, key: str, default: Any = None) -> Any:
    """A checked value of mapping ``d`` or ``default`` when absent or invalid."""
    if not isinstance(d, dict):
        return default
    v = d.get(key, default)
    return default if v is INVALID else v


def node_of(d: PDict, key: str) -> Node:
    """The Node of a key's value in a checked mapping."""
    return d.node.value[key]


class Builder:
    """Shared state while one file is turned into a Scenario.

    ``containers`` is filled once the ``containers:`` section is built, before the checks.
    """

    def __init__(self, ctx: Ctx, tree: Node, base_dir: str) -> None:
        self.ctx = ctx
        self.tree = tree
        self.base_dir = base_dir
        cont = tree.value.get("containers")
        vols = tree.value.get("volumes")
        # Names come from the raw tree, so a container whose body is invalid is still
        # a valid reference (one error, not a cascade).
        self.container_names: list[str] = list(cont.value) if cont is not None and cont.kind == "map" else []
        self.volume_names: list[str] = list(vols.value) if vols is not None and vols.kind == "map" else []
        self.requires: list[tuple[str, str, Pos]] = []
        self.containers: list[ContainerSpec] = []
        self.engines: tuple[str, ...] = ()  # the scenario's ``engines:`` (() = every engine)
        self.engine_keys: list[tuple[str, str, Pos]] = []  # (key, key path, Pos): see engine_only

    def ref(self, name: Any, node: Node, path: str, *, allow_host: bool = False, what: str = "container") -> bool:
        """Check that ``name`` is a container of this file; record an error if not."""
        if name is INVALID or not isinstance(name, str):
            return False
        if name in self.container_names or (allow_host and name == "host"):
            return True
        choices = self.container_names + (["host"] if allow_host else [])
        hint = did_you_mean(name, choices) if choices else ""
        self.ctx.at(node, path, f"unknown {what} '{name}'{hint}")
        return False

    def require(self, flag: str, path: str, node: Node) -> None:
        """Record an opt-in the CLI must allow."""
        self.requires.append((flag, path, pos_of(self.ctx, node)))

    def engine_only(self, key: str, path: str, node: Node) -> None:
        """Record a key only some engines carry out (``security.ENGINE_ONLY``)."""
        self.engine_keys.append((key, path, pos_of(self.ctx, node)))

    def ipc_owner(self, name: str) -> tuple[str, str] | None:
        """(owner of ``name``'s IPC namespace, the owner's ipc mode), following
        ``container:`` links among the built containers; None for an unknown name."""
        by_name = {c.name: c for c in self.containers}
        cur = by_name.get(name)
        if cur is None:
            return None
        seen = {cur.name}
        while cur.ipc_donor is not None and cur.ipc_donor in by_name and cur.ipc_donor not in seen:
            seen.add(cur.ipc_donor)
            cur = by_name[cur.ipc_donor]
        return cur.name, cur.ipc if cur.ipc_donor is None else "private"
