"""The one table of check kinds. A new kind is a module in this package plus one line here.

The order is the order of the kind keys in the JSON Schema and in the handout.
"""

from __future__ import annotations

from typing import Any

from labctl.scenario.kinds import (
    cleanup, events, exit, file, memory, namespace, objects, output, refused, restarts, segment,
)
from labctl.scenario.kinds.base import CheckKind

KINDS: dict[str, CheckKind] = {k.name: k for k in (
    exit.KIND,
    events.KIND,
    namespace.KIND,
    segment.KIND,
    file.KIND,
    output.KIND,
    refused.KIND,
    restarts.KIND,
    objects.KIND,
    memory.KIND,
    cleanup.KIND,
)}


def kind_of(body: Any) -> CheckKind:
    """The kind whose model ``body`` is an instance of. Raises KeyError for a foreign body."""
    for k in KINDS.values():
        if isinstance(body, k.model):
            return k
    raise KeyError(type(body).__name__)
