"""The scenario file format as one declarative table (docs/internals.md section 3).

Both the validator (``labctl.scenario.validate``) and the JSON Schema
(``labctl.scenario.schema``) are derived from :data:`SCENARIO`; change the format here.
"""

from __future__ import annotations

import re
from typing import Any

from labctl.scenario.model import BUILTIN_LAYOUTS, CHECK_KINDS, WORKLOADS
from labctl.scenario.compound import AnyOf, DictOf, ExpectT, F, ListOf, Obj
from labctl.scenario.spec import Bool, Duration, Int, Leaf, Regex, Size, Str, Text
from labctl.scenario.yamlload import Node

NAME_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
TAG_RE = r"^[a-z0-9][a-z0-9-]{0,62}$"
CONTAINER_RE = r"^[a-z][a-z0-9-]{0,30}$"
CONTAINER_HINT = "lowercase letters, digits and '-', starting with a letter, at most 31 characters"
_NAME = CONTAINER_RE[1:-1]
IPC_RE = rf"^(private|shareable|none|host|container:{_NAME})$"
NETWORK_RE = rf"^(none|bridge|container:{_NAME})$"
PID_RE = rf"^(host|container:{_NAME})$"
MOUNT_RE = rf"^{_NAME}:/[^:]*(:ro|:rw)?$"
FIELD_TYPE_RE = r"^(u?int(8|16|32|64)|cstring\[[1-9][0-9]{0,3}\]|bytes\[[1-9][0-9]{0,3}\])$"
EVENT_RE = r"^[a-z][a-z0-9_-]{0,62}$"
# Namespaced sysctls Docker lets a container set (docs.docker.com, "docker run --sysctl").
SYSCTL_RE = r"^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+|net\.[a-z0-9_.]+)$"
LABEL_RE = r"^(?!io\.labctl\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"


def _ipc(node: Node) -> str:
    s: str = node.value
    if not re.match(IPC_RE, s):
        raise ValueError(f"unknown IPC mode '{s}' (expected private, shareable, none, host or container:NAME)")
    return s


def _octal(node: Node) -> int:
    v = node.value
    if isinstance(v, str):
        if not re.match(r"^0?[0-7]{3,4}$", v):
            raise ValueError(f"invalid permissions {v!r} (expected octal such as 0666)")
        return int(v, 8)
    raw = node.raw or ""
    if v != 0 and re.match(r"^[1-9][0-9]*$", raw):
        # YAML 1.1 reads 0666 as octal but 666 as decimal: almost always a typo.
        raise ValueError(f"permissions {raw} are decimal; write them in octal with a leading 0 (0{raw})")
    if not 0 <= v <= 0o7777:
        raise ValueError(f"permissions out of range: {raw}")
    return int(v)


def _key(node: Node) -> int:
    v = node.value
    if isinstance(v, str):
        if re.match(r"^0[xX][0-9a-fA-F]{1,8}$", v):
            return int(v, 16)
        if re.match(r"^[0-9]{1,10}$", v):
            v = int(v)
        else:
            raise ValueError(f"invalid IPC key {v!r} (expected an integer or hex such as 0x4d2)")
    if not -(2**31) <= v < 2**32:
        raise ValueError(f"IPC key {v} out of range (a 32-bit key_t)")
    return int(v)


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


def _scalar(node: Node) -> Any:
    return node.value


def Ref(description: str = "a container of this file") -> Leaf:
    """A container name (existence is checked after the whole file is read)."""
    return Str(description, pattern=CONTAINER_RE, hint=CONTAINER_HINT, what="container name")


SCALAR = Leaf("a string, number or boolean", (str, int, float, bool),
              {"type": ["string", "number", "boolean"]}, _scalar)
COUNT = Int(maximum=10**9)
PERMS = Leaf("octal permissions such as 0666", (int, str),
             {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 0o7777},
                        {"type": "string", "pattern": r"^0?[0-7]{3,4}$"}]}, _octal)
KEY = Leaf("an IPC key (integer or hex string such as 0x4d2)", (int, str),
           {"anyOf": [{"type": "integer", "minimum": -(2**31), "maximum": 2**32 - 1},
                      {"type": "string", "pattern": r"^(0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})$"}]}, _key)

LAYOUT = AnyOf((
    Str("a built-in layout", enum=tuple(BUILTIN_LAYOUTS), what="layout"),
    ListOf(Obj({
        "name": F(Str("field name", pattern=r"^[a-z_][a-z0-9_]{0,62}$", what="field name"), True),
        "offset": F(Int("byte offset", maximum=2**30), True),
        "type": F(Str("int8..int64, uint8..uint64, cstring[N] or bytes[N]", pattern=FIELD_TYPE_RE,
                      hint="int8..int64, uint8..uint64, cstring[N] or bytes[N]", what="field type"), True),
    }, "one field of the layout"), min_items=1, max_items=64),
), expected="a layout name (conn_stat) or a list of {name, offset, type}",
    description="how to decode the bytes: a built-in layout or a list of fields")
FIELDS = DictOf(ExpectT(SCALAR), "expected values of layout fields (FIELD: VALUE or FIELD: {OP: VALUE})")

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
                  "private (default) | shareable | none | host | container:NAME")),
    "after": F(AnyOf((
        Ref(), AFTER_ONE, ListOf(AnyOf((Ref(), AFTER_ONE), expected="a container name or {NAME: CONDITION}")),
    ), expected="NAME, [NAME...], {NAME: COND} or [{NAME: COND}...]",
        description="start only once these containers reached a condition")),
    "volumes": F(ListOf(Str("VOLUME:/TARGET[:ro]", pattern=MOUNT_RE, what="mount",
                            hint="expected VOLUME:/TARGET or VOLUME:/TARGET:ro with VOLUME from volumes:"),
                        "scenario volumes to mount")),
    "tmpfs": F(ListOf(Str("an absolute path", pattern=r"^/[^:]*$", what="tmpfs path",
                          hint="expected an absolute path"), "per-container tmpfs mounts")),
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
    "read_only": F(Bool("read-only root filesystem (default true; false gives the container a writable layer of its own)")),
    "network": F(Str("none (default) | bridge | container:NAME", pattern=NETWORK_RE, what="network",
                     hint="expected none, bridge or container:NAME")),
    "cap_add": F(ListOf(Str("a capability", pattern=r"^(CAP_)?[A-Z_]{2,32}$", what="capability",
                            hint="an upper-case capability name such as SYS_ADMIN"),
                        "capabilities to add (needs --allow-privileged)")),
    "privileged": F(Bool("privileged container (needs --allow-privileged)")),
    "pid": F(Str("host | container:NAME", pattern=PID_RE, what="pid mode",
                 hint="expected host or container:NAME")),
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

_CHECK_KINDS_SPECS: dict[str, Obj] = {
    "exit": Obj({
        "container": F(Ref(), True),
        "code": F(AnyOf((Int(maximum=255), ListOf(Int(maximum=255), min_items=1)),
                        expected="an exit code or a list of exit codes", description="exit code(s), default 0")),
        "signal": F(Str("killed by this signal", pattern=r"^SIG[A-Z0-9]+$", what="signal",
                        hint="expected a name such as SIGBUS")),
    }, "the container exits with a code or is killed by a signal", exclusive=(("code", "signal"),)),
    "events": Obj({
        "container": F(Ref(), True),
        "event": F(Str("the JSON event name", pattern=EVENT_RE, what="event name"), True),
        "where": F(DictOf(ExpectT(SCALAR), "FIELD: VALUE or FIELD: {OP: VALUE}")),
        "errno": F(Str("shorthand for where errno == X", pattern=r"^E[A-Z0-9]+$", what="errno",
                       hint="expected a name such as ENOENT")),
        "min": F(Int("at least this many events (default 1)", maximum=10**9)),
        "max": F(Int("at most this many events", maximum=10**9)),
        "rising": F(Str("this field strictly increases across the events", pattern=r"^[a-z_][a-z0-9_]*$",
                        what="field name")),
    }, "JSON events of a container"),
    "namespace": Obj({
        "containers": F(ListOf(Ref("a container, or host"), min_items=2, max_items=2), True),
        "same": F(Bool("true: same IPC namespace; false: different"), True),
    }, "two containers are (or are not) in one IPC namespace"),
    "segment": Obj({
        "in": F(Ref("a container living in a shareable or host IPC namespace"), True),
        "key": F(KEY),
        "shmid_from": F(Ref("the container whose 'attached' event gives the shmid")),
        "present": F(Bool("false: no such segment (default true)")),
        "size": F(ExpectT(COUNT, "segment size in bytes")),
        "nattch": F(ExpectT(COUNT, "number of attaches")),
        "perms": F(ExpectT(PERMS, "mode & 0777")),
        "dest": F(Bool("marked for removal")),
        "layout": F(LAYOUT),
        "fields": F(FIELDS),
    }, "a SysV segment seen from a container's IPC namespace", one_of=("key", "shmid_from"),
        depends={"fields": "layout"}),
    "file": Obj({
        "container": F(Ref(), True),
        "path": F(Str("an absolute path in that container", pattern=r"^/", what="path",
                      hint="expected an absolute path"), True),
        "exists": F(Bool("false: the file must not exist (default true)")),
        "size": F(ExpectT(COUNT, "file size in bytes")),
        "same_as": F(Ref("the same path through this container is the same inode")),
        "layout": F(LAYOUT),
        "fields": F(FIELDS),
    }, "a file on a container's storage", depends={"fields": "layout"}),
    "output": Obj({
        "container": F(Ref(), True),
        "matches": F(Regex("a line matches")),
        "not_matches": F(Regex("no line matches")),
        "stream": F(Str("stdout | stderr | both (default)", enum=("stdout", "stderr", "both"), what="stream")),
    }, "the container's output", one_of=("matches", "not_matches")),
    "refused": Obj({
        "container": F(Ref(), True),
        "matches": F(Regex("the engine's reason matches"), True),
    }, "the engine refused to start the container"),
    "cleanup": Obj({}, "after teardown nothing of this run remains"),
}
assert tuple(_CHECK_KINDS_SPECS) == CHECK_KINDS

CHECK = Obj({
    "name": F(Str("shown in reports; default derived from the kind", max_len=200)),
    "timeout": F(Duration("deadline (default 10s)")),
    "consistently": F(Duration("must hold for this long (negative checks)")),
    **{k: F(v) for k, v in _CHECK_KINDS_SPECS.items()},
}, "one check: exactly one kind key", one_of=CHECK_KINDS, one_of_what="check kind")

SCENARIO = Obj({
    "version": F(Leaf("1", (int,), {"const": 1}, _version, "format version, must be 1"), True),
    "name": F(Str("unique in a run", pattern=NAME_RE, what="scenario name",
                  hint="lowercase letters, digits and '-', at most 63 characters"), True),
    "description": F(Str("first line is the one-liner for labctl list", max_len=20000), True),
    "tags": F(ListOf(Str(pattern=TAG_RE, what="tag", hint="lowercase letters, digits and '-'"), "for --tag")),
    "timeout": F(Duration("whole-scenario deadline (default 120s)")),
    "volumes": F(DictOf(VOLUME, "name -> storage shared by containers", key_pattern=CONTAINER_RE,
                        key_hint=CONTAINER_HINT)),
    "containers": F(DictOf(CONTAINER, "name -> container", key_pattern=CONTAINER_RE,
                           key_hint=CONTAINER_HINT, min_items=1, max_items=64), True),
    "checks": F(ListOf(CHECK, "what must hold", min_items=1,
                        min_message="a scenario needs at least one check"), True),
}, "A labctl scenario file")
