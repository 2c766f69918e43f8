"""What several rule modules share: restart policies, sandboxed runtimes, the kubelet's
safe sysctls, and finding the donor a container joins."""

from __future__ import annotations

import re

from labctl.stack.topology import Container, Topology

RESTARTING = ("always", "unless-stopped", "on-failure")
SANDBOXED = re.compile(r"(runsc|gvisor|kata)", re.IGNORECASE)
# sysctls a kubelet allows without --allowed-unsafe-sysctls (Kubernetes 1.29+ "safe" set)
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
IPC_SYSCTL = re.compile(r"^(kernel\.shm|kernel\.msg|kernel\.sem$|fs\.mqueue\.)")


def restarting(policy: str) -> bool:
    return policy.split(":", 1)[0].strip().lower() in RESTARTING


def donor(topo: Topology, c: Container) -> Container | None:
    """The container ``c`` names in ipc: service:/container: (by service or container_name)."""
    joins = c.joins
    if joins is None:
        return None
    index = topo.__dict__.get("_by_name")
    if index is None:
        index = {}
        for o in topo.containers:
            index.setdefault((o.group, o.name), o)
            if "container_name" in o.extra:
                index.setdefault((o.group, o.extra["container_name"]), o)
        topo.__dict__["_by_name"] = index
    return index.get((c.group, joins))
