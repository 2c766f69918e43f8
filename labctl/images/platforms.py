"""Platforms a workload can run on, and whether this machine can run them.

A platform is an OCI ``os/arch[/variant]`` string (``linux/arm64``). Each one maps
to a zig target (the static binary), an image tag suffix, and the binfmt_misc
entry Debian's ``qemu-user-static`` registers for it. A platform is *native* on an
engine whose CPU runs its code directly (``linux/386`` on x86_64); any other needs
user-mode emulation: a binfmt_misc entry with the ``F`` flag (the interpreter is
opened when registered, so it works inside FROM-scratch containers that have no
qemu of their own). Without one, the container would die at start with
``exec format error``; ``require_runnable`` says what to install instead.

No docker import: the engine's architecture comes in as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl.errors import EXIT_ENVIRONMENT, LabctlError, UsageError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF_DIR = Path("/usr/lib/binfmt.d")


@dataclass(frozen=True)
class Platform:
    """One supported platform.

    ``name``: the OCI platform (``linux/arm/v7``); ``arch``: the engine architecture
    as uname says it when this is the engine's own platform; ``zig_target``: the
    ``zig cc -target``; ``suffix``: the image tag suffix; ``bits``: pointer width;
    ``qemu``: the binfmt_misc entry name; ``native_on``: engine architectures
    (uname) that run its code without emulation.
    """

    name: str
    arch: str
    zig_target: str
    suffix: str
    bits: int
    qemu: str
    native_on: frozenset[str]

    def __str__(self) -> str:
        return self.name


PLATFORMS: tuple[Platform, ...] = (
    Platform("linux/amd64", "x86_64", "x86_64-linux-musl", "amd64", 64, "qemu-x86_64", frozenset({"x86_64"})),
    Platform("linux/arm64", "aarch64", "aarch64-linux-musl", "arm64", 64, "qemu-aarch64", frozenset({"aarch64"})),
    # i386 code runs on every x86_64 CPU (the kernel's IA32 emulation, not qemu).
    Platform("linux/386", "i386", "x86-linux-musl", "386", 32, "qemu-i386", frozenset({"x86_64"})),
    # Many arm64 CPUs have no AArch32 (Apple M1, Graviton 3): emulated unless proven otherwise.
    Platform("linux/arm/v7", "armv7l", "arm-linux-musleabihf", "armv7", 32, "qemu-arm", frozenset()),
)
_BY_NAME = {p.name: p for p in PLATFORMS}
_ALIASES = {"linux/arm64/v8": "linux/arm64", "linux/arm": "linux/arm/v7", "linux/x86_64": "linux/amd64",
            "linux/aarch64": "linux/arm64", "linux/i386": "linux/386"}


def names() -> list[str]:
    """The supported platform names, in table order."""
    return [p.name for p in PLATFORMS]


def lookup(text: str) -> Platform | None:
    """The platform called ``text`` (aliases such as ``linux/arm64/v8`` accepted), or None."""
    key = text.strip().lower()
    return _BY_NAME.get(_ALIASES.get(key, key))


def parse(text: str) -> Platform:
    """``lookup`` that raises UsageError (exit 2) naming the supported platforms."""
    plat = lookup(text)
    if plat is None:
        raise UsageError(f"unsupported platform {text!r} (supported: {', '.join(names())})")
    return plat


def of_engine(arch: str) -> Platform:
    """The engine's own platform from its uname architecture (``x86_64`` -> ``linux/amd64``).
    Raises LabctlError (exit 3) for an architecture labctl has no toolchain for."""
    for plat in PLATFORMS:
        if plat.arch == arch and arch in plat.native_on:
            return plat
    raise PlatformUnavailable(f"unsupported engine architecture {arch!r} "
                              f"(supported: {', '.join(p.arch for p in PLATFORMS if p.native_on)})")


def is_native(plat: Platform, engine_arch: str) -> bool:
    """True when an engine of ``engine_arch`` runs ``plat``'s code without emulation."""
    return engine_arch in plat.native_on


class PlatformUnavailable(LabctlError):
    """The engine cannot run a platform a command asked for (exit 3: install what it says)."""

    exit_code = EXIT_ENVIRONMENT


@dataclass(frozen=True)
class Emulation:
    """What binfmt_misc says about one platform: ``ok`` or the ``reason`` it is unusable;
    ``fix``: the one command (as root) when less than ``install_steps`` does it, else ""."""

    platform: Platform
    ok: bool
    reason: str
    entry: Path
    fix: str = ""


def emulation_state(plat: Platform, binfmt_dir: Path = BINFMT_DIR) -> Emulation:
    """Read ``binfmt_dir/<qemu entry>``: usable when it exists, is enabled and has the
    ``F`` (fix binary) flag. Reads files only; never registers anything."""
    entry = binfmt_dir / plat.qemu
    if not (binfmt_dir / "register").exists():
        return Emulation(plat, False, f"binfmt_misc is not mounted at {binfmt_dir}", entry)
    try:
        text = entry.read_text()
    except FileNotFoundError:
        return Emulation(plat, False, f"binfmt_misc has no {plat.qemu} entry ({entry} is missing)", entry)
    except OSError as e:
        return Emulation(plat, False, f"cannot read {entry}: {e.strerror or e}", entry)
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return Emulation(plat, False, f"the {plat.qemu} entry is disabled ({entry} says {lines[:1]})", entry,
                         fix=f"echo 1 > {entry}")
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    if "F" not in flags:
        return Emulation(plat, False, f"the {plat.qemu} entry has no F flag (flags: {flags or 'none'}), so its "
                                      "interpreter is not found inside containers", entry)
    return Emulation(plat, True, "", entry)


def install_steps(plat: Platform, binfmt_dir: Path = BINFMT_DIR, conf_dir: Path = BINFMT_CONF_DIR) -> list[str]:
    """The shell commands (as root, Debian/Ubuntu) that make ``plat`` runnable: the
    static qemu, binfmt_misc mounted, and its entry (re-)registered with the F flag."""
    entry = binfmt_dir / plat.qemu
    conf = conf_dir / f"{plat.qemu}.conf"
    return [
        "apt-get install -y qemu-user-static",
        f"mountpoint -q {binfmt_dir} || mount -t binfmt_misc binfmt_misc {binfmt_dir}",
        # an entry registered without F must go first: registering a name twice fails
        f"if [ -e {entry} ] && ! grep -q '^flags:.*F' {entry}; then echo -1 > {entry}; fi",
        # Debian's file already ends in F (e.g. :OCF or :POF); sed adds F where it is missing
        f"[ -e {entry} ] || sed -E 's/:([A-EG-Z]*)$/:\\1F/' {conf} > {binfmt_dir}/register",
        f"echo 1 > {entry}",  # an entry that was switched off (echo 0) stays registered but unused
    ]


def require_runnable(plat: Platform, engine_arch: str, *, binfmt_dir: Path = BINFMT_DIR,
                     conf_dir: Path = BINFMT_CONF_DIR) -> bool:
    """Check that an engine of ``engine_arch`` can run ``plat``; returns True when it runs
    under emulation, False when natively. Raises PlatformUnavailable (exit 3) with the
    exact steps to install the emulation when its binfmt_misc entry is missing or
    unusable. Assumes the engine runs on this machine (binfmt_misc is per host)."""
    if is_native(plat, engine_arch):
        return False
    state = emulation_state(plat, binfmt_dir)
    if state.ok:
        return True
    steps = "\n".join(f"  {s}" for s in install_steps(plat, binfmt_dir, conf_dir))
    raise PlatformUnavailable(
        f"{plat.name} needs emulation on this {engine_arch} engine, and it is not set up: {state.reason}.\n"
        f"Install it (as root), then run again:\n{steps}"
    )
