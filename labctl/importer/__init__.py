"""``labctl import``: a user's Compose file or Kubernetes manifests as a scenario.

Readers (``compose``, ``k8s``) turn a file into a :class:`~labctl.importer.model.Stack`,
the narrow model of what to run; ``generate`` writes the scenario with generated checks
(IPC groups, /dev/shm sizes, shared volume paths, cleanup). Engine-free. See docs/import.md.
"""

from __future__ import annotations

from labctl.importer.generate import Generated, generate
from labctl.importer.model import Mount, Note, Service, Stack, Volume

__all__ = ["Generated", "generate", "Mount", "Note", "Service", "Stack", "Volume"]
