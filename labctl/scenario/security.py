"""The security keys of a container: ``security_opt`` (seccomp profile file, SELinux
``label=``, ``apparmor=``, ``no-new-privileges``) and ``shm_options`` (/dev/shm mount
options). Validation beyond the patterns of the table (the seccomp file must exist and be a
profile), and what the host must enforce for a scenario to mean anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

from labctl.scenario.builder import Builder
from labctl.scenario.model import ContainerSpec
from labctl.scenario.spec import PList

# seccomp=unconfined | seccomp=PATH (a JSON profile, relative to the scenario file);
# label=disable | label=user:U | role:R | type:T | level:L (SELinux); apparmor=PROFILE
# (or unconfined); no-new-privileges[:true|false]
SECURITY_OPT_RE = (r"^(seccomp=[^\0]+|label=(disable|nested|(user|role|type|level|filetype):[^\0]+)"
                   r"|apparmor=[A-Za-z0-9_./-]+|no-new-privileges(:(true|false))?)$")
SECURITY_OPT_HINT = ("expected seccomp=FILE|unconfined, label=disable|user:U|role:R|type:T|level:L, "
                     "apparmor=PROFILE|unconfined or no-new-privileges[:true|false]")
# tmpfs mount options labctl passes on (mode in octal; uid/gid numeric)
MOUNT_OPT_RE = r"^(exec|noexec|mode=[0-7]{3,4}|uid=[0-9]{1,10}|gid=[0-9]{1,10})$"
MOUNT_OPT_HINT = "expected exec, noexec, mode=OCTAL, uid=N or gid=N"

# user namespace modes: host everywhere; keep-id and auto are Podman's (Docker's only other mode
# is the daemon-wide userns-remap, not a per-container choice)
USERNS_MODES = ("host", "keep-id", "auto")
USERNS_ENGINES = {"host": ("docker", "podman"), "keep-id": ("podman",), "auto": ("podman",)}

# Container keys that only some engines carry out: key -> (engines, why the others cannot).
# A scenario using one is skipped on the others (refused when named); `engines:` leaving all
# of them out is an error at the key.
ENGINE_ONLY = {
    "umask": (("podman",), "Docker has no per-container umask (docker run has no --umask; its runtime "
                           "starts the container's processes with umask 022)"),
}

SELINUX_ENFORCE = Path("/sys/fs/selinux/enforce")
APPARMOR_ENABLED = Path("/sys/module/apparmor/parameters/enabled")


def engine_only_errors(s, target: str, why: str) -> list:  # noqa: ANN001 - a Scenario
    """ScenarioErrors (located at the key) for the keys of ``s`` only some engines carry out,
    which export ``target`` cannot express either: ``why`` says why, after the key's name."""
    from labctl.errors import ScenarioError

    return [ScenarioError(pos.file, pos.line or None, pos.col or None, path,
                          f"{target} cannot express this: {key} {why}") for key, path, pos in s.engine_only]


def security_opts(b: Builder, value: PList | None, path: str) -> tuple[str, ...]:
    """The ``security_opt`` entries, each seccomp=PATH made absolute (relative to the scenario
    file) once checked to be a readable JSON profile (errors at the entry's position)."""
    if value is None:
        return ()
    out: list[str] = []
    for i, opt in enumerate(value):
        if not isinstance(opt, str):
            continue
        if opt.startswith("seccomp=") and opt != "seccomp=unconfined":
            rel = opt.split("=", 1)[1]
            full = rel if os.path.isabs(rel) else os.path.normpath(os.path.join(b.base_dir, rel))
            why = _profile_problem(full)
            if why:
                b.ctx.at(value.node.value[i], f"{path}[{i}]", f"seccomp profile {rel}: {why}")
            opt = f"seccomp={full}"
        out.append(opt)
    return tuple(out)


def _profile_problem(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        return e.strerror or str(e)
    except ValueError as e:
        return f"not JSON ({e})"
    if not isinstance(data, dict) or "defaultAction" not in data:
        return "not a seccomp profile (a JSON object with defaultAction, as Docker's)"
    return ""


def seccomp_profile(opts: tuple[str, ...]) -> str | None:
    """The absolute profile path of ``seccomp=PATH`` (None: the engine's default profile;
    ``unconfined`` is passed on as it is)."""
    for o in opts:
        if o.startswith("seccomp=") and o != "seccomp=unconfined":
            return o.split("=", 1)[1]
    return None


def needs_lsm(opts: tuple[str, ...]) -> set[str]:
    """The Linux security modules whose enforcement the options are about: ``selinux`` for a
    label other than disable, ``apparmor`` for a profile other than unconfined."""
    need = set()
    for o in opts:
        if o.startswith("label=") and o != "label=disable":
            need.add("selinux")
        if o.startswith("apparmor=") and o != "apparmor=unconfined":
            need.add("apparmor")
    return need


def lsm_enabled(name: str) -> bool:
    """True when the host kernel enforces ``selinux`` or ``apparmor``."""
    try:
        if name == "selinux":
            return SELINUX_ENFORCE.exists()
        return APPARMOR_ENABLED.read_text().strip().upper().startswith("Y")
    except OSError:
        return False



# ---- what the engines get (the runner's RunSpec and the compose export use these)


def security_opt(c: ContainerSpec) -> list[str]:
    """The engine's ``security_opt`` for ``c`` but its seccomp profile file (passed apart):
    no-new-privileges unless the file says otherwise, then its label=/apparmor= entries."""
    opts = [("no-new-privileges:true" if o == "no-new-privileges" else o) for o in c.security_opt
            if not o.startswith("seccomp=") or o == "seccomp=unconfined"]
    if not any(o.startswith("no-new-privileges") for o in opts):
        opts.insert(0, "no-new-privileges:true")
    return opts


def tmpfs_options(options: tuple[str, ...]) -> str:
    """A per-container tmpfs's mount options: mode 1777 unless given, then the scenario's."""
    return ",".join(([] if any(o.startswith("mode=") for o in options) else ["mode=1777"]) + list(options))


DEFAULT_SHM = 64 * 1024 * 1024  # the engines' /dev/shm size


def devshm_tmpfs(c: ContainerSpec) -> dict[str, str]:
    """``shm_options``: a /dev/shm of the container's own, a tmpfs mounted like the engine's
    (nosuid, nodev, mode 1777, shm_size) with the options given (``exec`` replaces the
    engine's noexec). Empty without shm_options: the engine's /dev/shm."""
    if not c.shm_options:
        return {}
    opts = ["rw", "nosuid", "nodev"]
    if not any(o.startswith("mode=") for o in c.shm_options):
        opts.append("mode=1777")
    if "exec" not in c.shm_options and "noexec" not in c.shm_options:
        opts.append("noexec")
    opts += [*c.shm_options, f"size={c.shm_size or DEFAULT_SHM}"]
    return {"/dev/shm": ",".join(opts)}
