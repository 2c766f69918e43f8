"""The scenario file format as one declarative table (docs/internals.md section 3).

Both the validator (``labctl.scenario.validate``) and the JSON Schema
(``labctl.scenario.schema``) are derived from :data:`SCENARIO`; change the format here.
The keys of each check kind come from its module, through ``kinds.registry.KINDS``.
"""

from __future__ import annotations

import dataclasses
import re

from labctl.images import platforms
from labctl.runtime.lookup import ENGINE_NAMES
from labctl.runtime.oci import RUNTIMES
from labctl.scenario.security import (
    MOUNT_OPT_HINT, MOUNT_OPT_RE, SECURITY_OPT_HINT, SECURITY_OPT_RE, USERNS_MODES,
)
from labctl.scenario.shared_specs import (  # noqa: F401  (re-exported: the table's shared leaves)
    CONTAINER_HINT, CONTAINER_RE, COUNT, EVENT_RE, FIELD_VALUES, KEY, LAYOUT, PERMS, SCALAR, UMASK, Ref,
)
from labctl.scenario.compound import AnyOf, DictOf, F, ListOf, Obj
from labctl.scenario.kinds.registry import KINDS
from labctl.scenario.model import WORKLOADS
from labctl.scenario.spec import Bool, Duration, Leaf, Size, Str, Text
from labctl.scenario.steps import STEP
from labctl.scenario.yamlload import Node

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
TAG_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
_NAME = CONTAINER_RE[1:-1]
IPC_RE = rf"^(private|shareable|none|host|container:{_NAME})$"
NETWORK_RE = rf"^(none|bridge|container:{_NAME})$"
PID_RE = rf"^(host|container:{_NAME})$"
MOUNT_RE = rf"^{_NAME}:/[^:]*(:ro|:rw)?$"
# Namespaced sysctls Docker lets a container set (docs.docker.com, "docker run --sysctl").
SYSCTL_RE = r"^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+|net\.[a-z0-9_.]+)$"
RESTART_RE = r"^(no|always|unless-stopped|on-failure(:[1-9][0-9]{0,3})?)$"
_OPT = MOUNT_OPT_RE[1:-1]
TMPFS_RE = rf"^/[^:]*(:{_OPT}(,{_OPT})*)?$"
LABEL_RE = r"^(?!io\.labctl\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"


def _ipc(node: Node) -> str:
    s: str = node.value
    if not re.match(IPC_RE, s):
        raise ValueError(f"unknown IPC mode '{s}' (expected private, shareable, none, host or container:NAME)")
    return s


def _platform(node: Node) -> str:
    plat = platforms.lookup(node.value)
    if plat is None:
        raise ValueError(f"unsupported platform {node.value!r} (supported: {', '.join(platforms.names())})")
    return plat.name


def _version(node: Node) -> int:
    if node.value != 1:
        raise ValueError(f"unsupported version {node.raw} (this labctl reads version 1)")
    return 1


def _user(node: Node) -> str:
    s = node.raw if node.raw is not None else str(node.value)
    if not re.match(r"^[a-z0-9_][a-z0-9_-]{0,31}(:[a-z0-9_][a-z0-9_-]{0,31})?$", s):
        raise ValueError(f"invalid user {s!r} (expected UID, UID:GID or a name)")
    return s


def _condition(node: Node) -> str:
    s: str = node.value
    if len(s) >= 2 and s.startswith("/") and s.endswith("/"):
        try:
            re.compile(s[1:-1])
        except re.error as e:
            raise ValueError(f"invalid regular expression {s!r}: {e}") from None
        return s
    if not re.match(EVENT_RE, s):
        raise ValueError(f"invalid condition {s!r} (expected started, exited, /REGEX/ or an event name)")
    return s


COND = Leaf("a condition (started, exited, /REGEX/ or an event name)", (str,),
            {"type": "string"}, _condition, "started | exited | /REGEX/ | an event name")
AFTER_ONE = DictOf(COND, "NAME: CONDITION", key_pattern=CONTAINER_RE, key_hint=CONTAINER_HINT, min_items=1)

CONTAINER = Obj({
    "workload": F(Str("a shmlab command run from the workload image", enum=WORKLOADS, what="workload")),
    "args": F(ListOf(Text(), "arguments after the workload command (scalars become strings)")),
    "image": F(Str("an image to run instead of a workload", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
                   what="image reference")),
    "command": F(ListOf(Text(), "the command (with image)")),
    "entrypoint": F(ListOf(Text(), "the entrypoint (with image)")),
    "ipc": F(Leaf("an IPC mode", (str,), {"type": "string", "pattern": IPC_RE}, _ipc,
                  "private | shareable | none | host | container:NAME (default: the engine's own, "
                  "private on Docker, shareable on Podman)")),
    "after": F(AnyOf((
        Ref(), AFTER_ONE, ListOf(AnyOf((Ref(), AFTER_ONE), expected="a container name or {NAME: CONDITION}")),
    ), expected="NAME, [NAME...], {NAME: COND} or [{NAME: COND}...]",
        description="start only once these containers reached a condition")),
    "volumes": F(ListOf(Str("VOLUME:/TARGET[:ro]", pattern=MOUNT_RE, what="mount",
                            hint="expected VOLUME:/TARGET or VOLUME:/TARGET:ro with VOLUME from volumes:"),
                        "scenario volumes to mount")),
    "tmpfs": F(ListOf(Str("/PATH or /PATH:OPTIONS (exec, noexec, mode=OCTAL, uid=N, gid=N; comma-separated)",
                          pattern=TMPFS_RE, what="tmpfs path",
                          hint="expected an absolute path, optionally :OPTIONS (exec, noexec, mode=OCTAL, uid=N, "
                               "gid=N, comma-separated)"), "per-container tmpfs mounts")),
    "user": F(Leaf("a user (UID, UID:GID or a name)", (str, int), {"type": ["string", "integer"]},
                   _user, "UID[:GID] the processes run as")),
    "shm_size": F(Size("size of /dev/shm", maximum=2**36)),
    "sysctls": F(DictOf(Text(), "namespaced sysctls", key_pattern=SYSCTL_RE,
                        key_hint="only namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, "
                                 "fs.mqueue.*, net.*) may be set in a container")),
    "env": F(DictOf(Text(), "environment variables", key_pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                    key_hint="letters, digits and '_', not starting with a digit")),
    "labels": F(DictOf(Text(), "labels of your own on the container", key_pattern=LABEL_RE,
                       key_hint="the io.labctl. prefix is reserved for labctl's own labels; "
                                "otherwise letters, digits, '.', '-', '_' and '/'")),
    "timeout": F(Duration("the container is killed (and the scenario fails) past this")),
    "platform": F(Leaf("a platform", (str,), {"type": "string", "enum": platforms.names()}, _platform,
                       "the OCI platform it runs on: " + " | ".join(platforms.names())
                       + " (default: the run's --platform, else the engine's own)")),
    "runtime": F(Str("the OCI runtime: " + " | ".join(RUNTIMES) + " (default: the run's --runtime, else the "
                     "engine's own); a runtime the engine lacks skips the scenario (refused when named)",
                     enum=tuple(RUNTIMES), what="runtime")),
    "security_opt": F(ListOf(Str("seccomp=FILE|unconfined | label=... | apparmor=PROFILE | no-new-privileges[:BOOL]",
                                 pattern=SECURITY_OPT_RE, what="security option", hint=SECURITY_OPT_HINT),
                             "security options (default: no-new-privileges); seccomp=FILE is relative to the "
                             "scenario file; label=/apparmor= skip the scenario where the host does not enforce them")),
    "userns": F(Str("the user namespace: host (Docker and Podman) | keep-id | auto (Podman); a mode the "
                     "engine lacks skips the scenario", enum=USERNS_MODES, what="user namespace mode")),
    "umask": F(dataclasses.replace(UMASK, description=
        "the umask of the container's processes, octal (Podman's --umask; Docker has none: the scenario is "
        "skipped there). Default: the runtime's 0022, which leaves a file created with mode 0666 at 0644")),
    "shm_options": F(ListOf(Str("exec | noexec | mode=OCTAL | uid=N | gid=N", pattern=MOUNT_OPT_RE,
                                what="/dev/shm option", hint=MOUNT_OPT_HINT),
                            "a /dev/shm of its own (a tmpfs of shm_size, default 64m) mounted with these options "
                            "instead of the engine's nosuid,nodev,noexec one; not with ipc: container:/host")),
    "read_only": F(Bool("read-only root filesystem (default true; false gives the container a writable layer of its own)")),
    "network": F(Str("none (default) | bridge | container:NAME", pattern=NETWORK_RE, what="network",
                     hint="expected none, bridge or container:NAME")),
    "cap_add": F(ListOf(Str("a capability", pattern=r"^(CAP_)?[A-Z_]{2,32}$", what="capability",
                            hint="an upper-case capability name such as SYS_ADMIN"),
                        "capabilities to add (needs --allow-privileged)")),
    "privileged": F(Bool("privileged container (needs --allow-privileged)")),
    "pid": F(Str("host | container:NAME", pattern=PID_RE, what="pid mode",
                 hint="expected host or container:NAME")),
    "memory": F(Size("cgroup memory limit (default 256m); shared-memory pages count against the "
                     "limit of the container that first touches them", maximum=2**40)),
    "memory_swap": F(Size("memory + swap limit (at least memory; equal to it: no swap)", maximum=2**41)),
    "restart": F(Str("the engine's restart policy: no (default) | on-failure[:N] | always | unless-stopped",
                     pattern=RESTART_RE, what="restart policy",
                     hint="expected no, on-failure, on-failure:N, always or unless-stopped")),
    "start": F(Bool("start with the scenario (default true); false: created, started by a start step")),
    "devices": F(ListOf(Str("HOST[:CONTAINER[:PERMS]]", pattern=r"^/dev/[^:]+(:/dev/[^:]+)?(:[rwm]{1,3})?$",
                            what="device", hint="expected /dev/HOST[:/dev/CONTAINER[:rwm]]"),
                        "devices (needs --allow-privileged)")),
}, "one container", one_of=("workload", "image"),
    depends={"args": "workload", "command": "image", "entrypoint": "image"})

VOLUME = Obj({
    "type": F(Str("volume (default) | tmpfs-volume | tempdir | hostdir",
                  enum=("volume", "tmpfs-volume", "tempdir", "hostdir"), what="volume type")),
    "size": F(Size("tmpfs-volume only: its size")),
    "path": F(Str("hostdir only: a directory, relative to the scenario file", pattern=r"^[^\0]+$")),
}, "a storage shared by containers", extra={"allOf": [
    {"if": {"required": ["type"], "properties": {"type": {"const": "hostdir"}}}, "then": {"required": ["path"]}},
]})

CHECK_KINDS = tuple(KINDS)


def engines_field(what: str) -> F:
    """``engines: [docker | podman, ...]``: where the engines really differ."""
    return F(ListOf(Str(enum=ENGINE_NAMES, what="engine", hint="expected " + " or ".join(ENGINE_NAMES)),
                    what, min_items=1))

CHECK = Obj({
    "name": F(Str("shown in reports; default derived from the kind", max_len=200)),
    "timeout": F(Duration("deadline (default 10s)")),
    "consistently": F(Duration("must hold for this long (negative checks)")),
    "engines": engines_field("judged only on these engines (where the engines really differ); "
                             "skipped on the others"),
    **{name: F(kind.spec) for name, kind in KINDS.items()},
}, "one check: exactly one kind key", one_of=CHECK_KINDS, one_of_what="check kind")

SCENARIO = Obj({
    "version": F(Leaf("1", (int,), {"const": 1}, _version, "format version, must be 1"), True),
    "name": F(Str("unique in a run", pattern=NAME_RE, what="scenario name",
                  hint="lowercase letters, digits and '-', at most 63 characters"), True),
    "description": F(Str("first line is the one-liner for labctl list", max_len=20000), True),
    "engines": engines_field("runs only on these engines (default: every engine); skipped on the others"),
    "tags": F(ListOf(Str(pattern=TAG_RE, what="tag", hint="lowercase letters, digits and '-'"), "for --tag")),
    "timeout": F(Duration("whole-scenario deadline (default 120s)")),
    "volumes": F(DictOf(VOLUME, "name -> storage shared by containers", key_pattern=CONTAINER_RE,
                        key_hint=CONTAINER_HINT)),
    "containers": F(DictOf(CONTAINER, "name -> container", key_pattern=CONTAINER_RE,
                           key_hint=CONTAINER_HINT, min_items=1, max_items=64), True),
    "steps": F(ListOf(STEP, "the timeline: actions and checks in order, once the containers are up",
                      max_items=1000)),
    "checks": F(ListOf(CHECK, "what must hold (after the last step)", min_items=1,
                        min_message="a scenario needs at least one check"), True),
}, "A labctl scenario file")
