"""``labctl export k8s``: scenarios as Kubernetes manifests (engine-free)."""

from __future__ import annotations

import sys

import click

from labctl.cli import common
from labctl.cli.params import option
from labctl.errors import EXIT_OK, ScenarioError, ScenarioErrors


@click.command("export")
@click.argument("target", type=click.Choice(["k8s"]))
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(), metavar="SCENARIO...")
@option("--image", metavar="REF",
        help="Image of the workload containers (default: the labctl/shmlab:<hash> that `labctl build` "
             "makes from these sources; load it onto the nodes, see docs/kubernetes.md).")
@option("--after", "after", type=click.Choice(["wait", "sidecar"]), default="wait", show_default=True,
        help="How `after:` becomes start order: `wait` (the reader waits for the writer's object itself; "
             "any cluster, and podman kube play) or `sidecar` (awaited containers become native sidecar "
             "init containers, Kubernetes 1.29+; readers still wait).")
@option("--run-id", "run_id", default="export", show_default=True, metavar="ID",
        help="The io.labctl.run-id label; any other value also prefixes pod and claim names with its "
             "first 8 characters, so several copies can live side by side.")
def export_cmd(target: str, scenarios: tuple[str, ...], image: str | None, after: str, run_id: str) -> int:
    """Print Kubernetes manifests (Pods, PersistentVolumeClaims) for scenario files.

    One Pod per IPC namespace: a donor and its joiners share a pod, a private container
    gets its own. YAML documents go to stdout. What a Pod cannot express (ipc: none,
    joining a private donor, host directories...) is refused as FILE:LINE:COL: key:
    message, exit 2, and nothing is printed.

    \b
    Examples:
      labctl export k8s scenarios/sysv-shareable.yaml | kubectl apply -f -
      labctl export k8s scenarios/posix-shareable.yaml > pods.yaml && podman kube play pods.yaml
      labctl export k8s --after sidecar scenarios/   # native sidecars (Kubernetes 1.29+)
    """
    from labctl.export import k8s

    loaded = common.load(scenarios)
    ref = image or k8s.default_image()
    wanted = {c.platform for s in loaded for c in s.containers if c.platform}
    # with --image, a platform's image is REF-<suffix> (how labctl tags them); else the build's ref
    per_platform = {} if image else {p: k8s.default_image(p) for p in wanted}
    out: list[str] = []
    errors: list[ScenarioError] = []
    for s in loaded:
        try:
            out.append(k8s.render(s, image=ref, after=after, run_id=run_id, platform_images=per_platform))  # type: ignore[arg-type]
        except ScenarioErrors as e:
            errors += e.errors
    if errors:
        raise ScenarioErrors(errors)
    sys.stdout.write("---\n".join(out))
    return EXIT_OK
