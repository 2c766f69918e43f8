"""Kubernetes export: a scenario as Pods (``labctl export k8s``). Engine-free.

``pods`` groups containers into pods by IPC namespace and refuses what a Pod cannot
express; ``render`` writes the manifests. See docs/kubernetes.md.
"""

from __future__ import annotations

from labctl.export.k8s.pods import PodPlan, plan_pods
from labctl.export.k8s.render import claim_name, manifests, pod_name, render


def default_image(platform: str | None = None) -> str:
    """The workload image ref ``labctl build`` makes for this host's platform
    (``labctl/shmlab:<hash12>``), or with ``platform`` (``linux/arm64``) for that one
    (``labctl/shmlab:<hash12>-arm64``), computed from the sources without an engine; a
    frozen labctl (the labctl image) names the binary it carries. BuildError when the
    sources are missing, UsageError for an unknown platform."""
    from labctl.images import build
    from labctl.images import platforms

    native = platforms.of_engine(build.host_arch())
    plat = platforms.parse(platform) if platform else native
    pre = build.prebuilt_binary()
    if pre is not None and plat == native:
        return build.image_ref(pre[0], native, native)
    return build.image_ref(build.content_hash(build.source_dir(), build.toolchain(plat)), plat, native)


__all__ = ["PodPlan", "plan_pods", "manifests", "render", "pod_name", "claim_name", "default_image"]
