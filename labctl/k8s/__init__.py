"""Kubernetes export: a scenario as Pods (``labctl export k8s``). Engine-free.

``pods`` groups containers into pods by IPC namespace and refuses what a Pod cannot
express; ``render`` writes the manifests. See docs/kubernetes.md.
"""

from __future__ import annotations

from labctl.k8s.pods import PodPlan, plan_pods
from labctl.k8s.render import claim_name, manifests, pod_name, render


def default_image() -> str:
    """The workload image ref ``labctl build`` makes for this host's platform
    (``labctl/shmlab:<hash12>``), computed from the sources without an engine; a frozen
    labctl (the labctl image) names the binary it carries. BuildError when the sources
    are missing."""
    from labctl import build, platforms

    native = platforms.of_engine(build.host_arch())
    pre = build.prebuilt_binary()
    digest = pre[0] if pre is not None else build.content_hash(build.source_dir(), build.toolchain(native))
    return build.image_ref(digest, native, native)


__all__ = ["PodPlan", "plan_pods", "manifests", "render", "pod_name", "claim_name", "default_image"]
