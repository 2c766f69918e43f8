"""``labctl import``: a user's Compose file or Kubernetes manifests as a scenario.

Readers (``from_compose``, ``from_k8s``; the files parsed by ``labctl.stack``) turn a file into a :class:`~labctl.importer.services.Stack`,
the narrow model of what to run; ``generate`` writes the scenario with generated checks
(IPC groups, /dev/shm sizes, shared volume paths, cleanup). Engine-free. See docs/import.md.
"""

from __future__ import annotations

from labctl.importer.generate import Generated, generate
from labctl.importer.services import Mount, Note, Service, Stack, Volume

__all__ = ["Generated", "generate", "Mount", "Note", "Service", "Stack", "Volume"]
