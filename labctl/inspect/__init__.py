"""``labctl inspect``: the running containers grouped by IPC namespace, with what each
namespace holds (SysV segments, semaphore sets, message queues, POSIX mqueues, /dev/shm)
and each container's memory, seen by labctl's own short-lived probes; read-only.

Layers: ``gather`` (engine data: selection, members, namespaces) -> ``probe`` (one probe
container per namespace) -> ``pitfalls`` (warnings naming library scenarios) ->
``show`` (text, JSON); ``look.Inspector`` runs one look and cleans up. Engine calls go
through ``labctl.runtime`` only.
"""

from labctl.inspect.look import Inspector
from labctl.inspect.findings import Member, Memory, Namespace, Report, Warning

__all__ = ["Inspector", "Member", "Memory", "Namespace", "Report", "Warning"]
