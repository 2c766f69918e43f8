"""A :class:`~labctl.importer.services.Stack` as a scenario file (the inverse of ``labctl
compose`` and ``labctl export k8s``). Engine-free.

The scenario runs every service with what the file declares (image or shmlab workload,
command, IPC mode, /dev/shm size, volumes, user, memory limit, restart policy) and
generated checks that verify on the engine what the file declares (``generated_checks``).
``translate`` turns each service into a container; this module adds the holders of lone
namespaces and writes the file. What a scenario cannot carry becomes a :class:`Note` (stderr, located) and a comment in
the output, next to what it concerns.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from labctl.importer.generated_checks import generated_checks
from labctl.importer.services import Note, Service, Stack
from labctl.importer.translate import Translator, is_prep
from labctl.scenario.model import WORKLOAD_IMAGE_REPO

SCHEMA_COMMENT = "# yaml-language-server: $schema=scenario.schema.json"


@dataclass
class Generated:
    """The scenario text, the notes (also written into it as comments), and the opt-ins
    ``labctl run`` will need (``--allow-host-ipc``...)."""

    text: str
    notes: list[Note]
    opt_ins: list[str] = field(default_factory=list)
    scenario: dict[str, Any] = field(default_factory=dict)


def scenario_name(stack: Stack) -> str:
    """``<project>-imported``: lowercase letters, digits and '-', at most 63 characters."""
    base = re.sub(r"[^a-z0-9-]+", "-", stack.name.lower()).strip("-") or "stack"
    if not base[0].isalnum():
        base = "s" + base
    return (base[:54].rstrip("-") + "-imported")



def hold_lone_namespaces(stack: Stack) -> tuple[Stack, dict[str, str]]:
    """A service alone in an IPC namespace of its own (ipc private, shareable or unset, no
    restart policy) gets a holder: a ``hold`` container that owns the namespace and the
    /dev/shm size, which the service joins. Isolation is the same; the namespace now lives
    for the whole run, so a probe can join it even when the service exits at once, and its
    id is never reused by another namespace during the checks. Services with a restart
    policy keep their own namespace (a restart gives them a new one; a holder would not).
    Returns the new stack and {holder: service}."""
    joined = {s.ipc[len("service:"):] for s in stack.services if s.ipc and s.ipc.startswith("service:")}
    taken = {s.name for s in stack.services}
    out: list[Service] = []
    held: dict[str, str] = {}
    for s in stack.services:
        lone = (s.ipc in (None, "private", "shareable") and s.name not in joined and not s.holder
                and s.restart in (None, "no") and s.image is not None and not is_prep(s))
        if not lone:
            out.append(s)
            continue
        name, i = f"{s.name}-ipc", 2
        while name in taken:
            name, i = f"{s.name}-ipc-{i}", i + 1
        taken.add(name)
        held[name] = s.name
        out.append(Service(name=name, image=f"{WORKLOAD_IMAGE_REPO}:latest", command=("hold",), ipc="shareable",
                           shm_size=s.shm_size, read_only=True, holder=True, pos=s.pos,
                           keys={"shm_size": s.at("shm_size")}))
        out.append(replace(s, ipc=f"service:{name}", shm_size=None))
    return replace(stack, services=tuple(out)), held




class _Dumper(yaml.SafeDumper):
    """Lists of scalars on one line (``args: [--key, '1234']``), as the library writes them."""


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _dump(value: Any, indent: int = 0) -> list[str]:
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)
    return [" " * indent + line for line in text.splitlines()]


def _block(key: str, text: str) -> list[str]:
    """``key: |`` and the text's lines, indented (the library's description style)."""
    return [f"{key}: |"] + [f"  {line}" if line else "" for line in text.rstrip("\n").splitlines()]


def generate(stack: Stack, *, out_dir: str = ".", command: str = "", name: str | None = None) -> Generated:
    """The scenario for ``stack`` as YAML text with comments. ``out_dir``: the folder the
    file is written to (host paths are made relative to it); ``command``: how it was made,
    for the header. Notes come back (and are written in as comments); never raises for
    what the file declares. When no service can run, ``Generated.scenario`` has no
    containers (the caller refuses it)."""
    stack, held = hold_lone_namespaces(stack)
    g = Translator(stack, os.path.abspath(out_dir))
    for holder, owner in held.items():
        g.above.setdefault(holder, []).append(
            f"holds the IPC namespace and /dev/shm of {owner}, which is alone in it as in the file, so that "
            f"labctl's probe can look inside even after {owner} exited (as a pod's sandbox does)")
        mode = next(x for x in stack.services if x.name == owner).keys.get("ipc")
        g.above.setdefault(owner, []).append(
            f"joins {holder}, which holds its namespace" + (f" (ipc at {g.where(mode)} in the file)" if mode else ""))
    g.resolve_ipc()
    volumes = g.volumes()
    containers: dict[str, dict[str, Any]] = {}
    for s in stack.services:
        containers[g.names[s.name]] = g.container(s)
    runnable = {n: c for n, c in containers.items() if c}
    # a joiner of a service that cannot run would be refused: its own namespace then
    for s in stack.services:
        ipc = runnable.get(g.names[s.name], {}).get("ipc", "")
        if ipc.startswith("container:") and ipc[len("container:"):] not in runnable:
            runnable[g.names[s.name]]["ipc"] = "private"
            g.ipc[s.name] = "private"
    checks = generated_checks(g, runnable) if runnable else []
    kind = "Compose file" if stack.kind == "compose" else "Kubernetes manifests"
    desc = (f"{stack.name}: the services of {os.path.basename(stack.file)}, imported.\n"
            f"Made by `{command or 'labctl import'}` from the {kind}.\n"
            "The checks verify on the engine what the file declares: which services share an IPC\n"
            "namespace and which do not, the size of /dev/shm in each namespace, the volumes mounted\n"
            "at one path by several services, and that nothing is left after the run. Edit from here:\n"
            "add checks of what your programs write (segment, file, events), then `labctl run` it.\n")
    scenario: dict[str, Any] = {"version": 1, "name": name or scenario_name(stack), "description": desc,
                                "tags": ["imported"]}
    if volumes:
        scenario["volumes"] = volumes
    scenario["containers"] = runnable
    scenario["checks"] = checks
    lines = [SCHEMA_COMMENT,
             f"# Generated by `{command or 'labctl import'}` from {stack.file}.",
             "# Editor completion: `labctl schema > scenario.schema.json` next to this file."]
    opt = sorted(g.opt_ins)
    if opt:
        lines.append(f"# Run it with `labctl run {' '.join(opt)} FILE`: the file asks for it.")
    lines += [f"# {g.where(n.pos)}: {n.key}: {n.message}" for n in g.top]
    lines += _dump({"version": 1, "name": scenario["name"]})
    lines += _block("description", desc)
    lines += _dump({"tags": scenario["tags"]})
    if volumes:
        lines += _dump({"volumes": volumes})
    lines.append("containers:")
    for s in stack.services:
        name = g.names[s.name]
        lines += [f"  # {c}" for c in g.above.get(s.name, [])]
        if name in runnable:
            lines += _dump({name: runnable[name]}, 2)
        else:
            lines.append(f"  # {s.name}: not imported")
    if not runnable:
        lines.append("  {}")
    lines += _dump({"checks": checks}) if checks else ["checks: []"]
    return Generated("\n".join(lines) + "\n", g.notes, opt, scenario)

