"""``labctl build``: compile the shmlab workload and build its FROM-scratch image.

The image tag is a content hash over everything that shapes the image (sources,
Dockerfile, compiler flags, compiler identity, target architecture), so an
unchanged tree is a no-op that costs one image lookup. The compiled binary is
cached per hash under ``$XDG_CACHE_HOME/labctl/build/<hash>/`` so that an image
removed by hand is rebuilt without recompiling.

Toolchain: ``$CC`` when set (a host compiler, e.g. ``CC=gcc``; it builds for the
host's architecture); else, for the host's own platform, the host's ``cc`` when it links
static binaries (probed once, ``labctl.images.hostcc``: a second or two instead of zig's first
musl build, half a minute per target); else ``python -m ziglang cc -target <zig target>``,
which cross-compiles static binaries for every platform of ``labctl.images.platforms``
(linux/amd64, linux/arm64, linux/386, linux/arm/v7) from PyPI alone.
``LABCTL_COMPILER=zig`` always uses zig; ``host`` requires the host compiler.

Platforms: one image per platform. The engine's own platform is
``labctl/shmlab:<hash12>`` (and ``:latest``); any other is
``labctl/shmlab:<hash12>-<suffix>`` (``-arm64``, ``-386``, ``-armv7``), built with
that platform so the image's os/architecture/variant say what the binary is.
The hash covers the target architecture, so two platforms never share a tag.

Engine access goes through ``labctl.runtime.Engine`` (``architecture``,
``image_exists``, ``build_image``, ``tag_image``); this module never imports
docker and never prints: progress goes to the ``progress`` callable.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labctl.runtime import labels

from labctl.images import platforms
from labctl.images.buildlock import build_lock
from labctl.errors import BuildError
from labctl.images.platforms import Platform
from labctl.scenario.model import WORKLOAD_IMAGE_REPO

REPO = WORKLOAD_IMAGE_REPO  # one home: the scenario model, whose `workload:` containers run it
IMAGE_LABEL = labels.IMAGE
HASH_LABEL = labels.SOURCE_HASH
PLATFORM_LABEL = labels.PLATFORM
BINARY = "shmlab"
# Files sent in the build context next to the binary (the Dockerfile COPYs them).
CONTEXT_FILES = ("Dockerfile", "shmlab-key")
SOURCE_SUFFIXES = (".c", ".h")
# -s strips the symbols: the image stays far below 1 MB. -D_GNU_SOURCE exposes
# the SysV/POSIX IPC declarations that -std=c11 alone would hide.
CFLAGS = ("-Wall", "-Wextra", "-std=c11", "-O2", "-D_GNU_SOURCE", "-static", "-s")
SUPPORTED_ARCHES = tuple(p.arch for p in platforms.PLATFORMS if p.native_on)  # engines we run on
COMPILE_TIMEOUT_S = 900.0  # zig's first run per target builds musl: allow slow machines
STDERR_TAIL_LINES = 30
PREBUILT_ENV = "LABCTL_PREBUILT_DIR"
COMPILER_ENV = "LABCTL_COMPILER"  # auto (default) | host | zig

Progress = Callable[[str], None]


class ImageEngine(Protocol):
    """The part of ``labctl.runtime.Engine`` this module needs (a fake suffices in tests)."""

    def architecture(self) -> str: ...

    def image_exists(self, ref: str) -> bool: ...

    def build_image(self, context: bytes, tag: str, labels: dict[str, str]) -> str: ...
    # Non-native platforms call build_image(..., platform="linux/arm64"): a fake that
    # only builds for the engine's own platform needs no such parameter.

    def tag_image(self, ref: str, repo: str, tag: str) -> None: ...


@dataclass(frozen=True)
class BuildResult:
    """What ``ensure_image`` did. ``str()`` gives the image reference."""

    image: str
    built: bool
    seconds: float
    hash: str

    def __str__(self) -> str:
        return self.image


@dataclass(frozen=True)
class Toolchain:
    """A C compiler command prefix and what identifies it for the content hash.
    ``arch``: the target's uname architecture (``x86_64``, ``aarch64``, ``i386``,
    ``armv7l``), part of the hash; ``platform``: the OCI platform it builds for."""

    argv: tuple[str, ...]
    identity: str
    arch: str
    zig: bool
    platform: str = ""


# ==== locations ====


def source_dir(env: Mapping[str, str] | None = None) -> Path:
    """The ``images/shmlab`` directory: ``$LABCTL_IMAGES_DIR/shmlab`` if that variable is
    set, else the package's own copy (a wheel) or the checkout's (see ``labctl.images.library``).

    Raises BuildError when it does not exist.
    """
    from labctl.images.library import images_dir

    env = os.environ if env is None else env
    override = env.get("LABCTL_IMAGES_DIR")
    images = Path(override) if override else images_dir()
    src = images / "shmlab"
    if not (src / "Dockerfile").is_file():
        where = "LABCTL_IMAGES_DIR" if override else "the installed package and the checkout"
        raise BuildError(
            f"workload sources not found: {src} has no Dockerfile (looked in {where}). "
            "Reinstall labctl (the wheel carries them) or set LABCTL_IMAGES_DIR to a folder holding shmlab/."
        )
    return src


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/labctl/build`` (default ``~/.cache/labctl/build``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labctl" / "build"


def source_files(src: Path) -> list[Path]:
    """The files whose bytes make the image: C sources and headers plus the context files."""
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    if not any(p.suffix == ".c" for p in files):
        raise BuildError(f"no C sources in {src}")
    for name in CONTEXT_FILES:
        path = src / name
        if not path.is_file():
            raise BuildError(f"missing {path} (the Dockerfile needs it)")
        files.append(path)
    return files


# ==== toolchain ====


def _ziglang_version() -> str:
    # Metadata, not `zig version`: no subprocess on the warm (no-op) path.
    from importlib import metadata

    try:
        return metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        return "missing"


def _cc_identity(argv: tuple[str, ...]) -> str:
    """The first line of ``$CC --version``, so switching compilers changes the hash."""
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"the C compiler CC={shlex.join(argv)} cannot run: {e}") from e
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else shlex.join(argv)


def toolchain(target: str | Platform, env: Mapping[str, str] | None = None) -> Toolchain:
    """Pick the compiler for ``target``: a Platform, or an engine architecture
    (``x86_64``/``aarch64``) meaning that engine's own platform.

    Raises BuildError for an unsupported architecture, or when ``$CC`` (a host
    compiler) cannot produce code for the target (another architecture, or a 32-bit
    platform: use ziglang for those).
    """
    env = os.environ if env is None else env
    if isinstance(target, Platform):
        plat = target
    else:
        if target not in SUPPORTED_ARCHES:
            raise BuildError(f"unsupported engine architecture {target!r} (supported: {', '.join(SUPPORTED_ARCHES)})")
        plat = platforms.of_engine(target)
    cc = env.get("CC", "").strip()
    choice = env.get(COMPILER_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "host", "zig"):
        raise BuildError(f"{COMPILER_ENV}={choice!r}: expected auto, host or zig")
    if not cc and choice != "zig" and plat.arch == host_arch():
        from labctl.images import hostcc

        found = hostcc.find(env, cache_dir(env))
        if found is not None:
            argv, ident = found
            return Toolchain(argv, f"cc:{ident}", plat.arch, zig=False, platform=plat.name)
        if choice == "host":
            raise BuildError(f"{COMPILER_ENV}=host: no host C compiler (cc, gcc) that links static binaries")
    if cc:
        argv = tuple(shlex.split(cc))
        host = host_arch()
        if host != plat.arch:
            raise BuildError(
                f"CC={cc} builds for this host ({host}) but {plat.name} needs {plat.arch} code; "
                "unset CC to cross-compile with ziglang"
            )
        return Toolchain(argv, f"cc:{_cc_identity(argv)}", plat.arch, zig=False, platform=plat.name)
    argv = (sys.executable, "-m", "ziglang", "cc", "-target", plat.zig_target)
    return Toolchain(argv, f"ziglang:{_ziglang_version()}", plat.arch, zig=True, platform=plat.name)


def host_arch() -> str:
    """This host's CPU architecture as uname says it (``x86_64``, ``aarch64``...), which
    the static binaries built for an engine of the same architecture run on."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def compile_command(tc: Toolchain, sources: list[Path], output: Path) -> list[str]:
    """The full compiler command line for ``sources`` into ``output``."""
    return [*tc.argv, *CFLAGS, "-o", str(output), *(str(s) for s in sources)]


# ==== content hash ====


def content_hash(src: Path, tc: Toolchain) -> str:
    """sha256 over the source and context files (names and bytes), the flags, the
    compiler identity and the target architecture; hex digest."""
    h = hashlib.sha256()
    for path in source_files(src):
        data = path.read_bytes()
        # name and length framing: moving bytes between files changes the hash
        h.update(f"file {path.name} {len(data)}\n".encode())
        h.update(data)
    h.update(("flags " + " ".join(CFLAGS) + "\n").encode())
    h.update(f"compiler {tc.identity}\narch {tc.arch}\n".encode())
    return h.hexdigest()


def prebuilt_binary(env: Mapping[str, str] | None = None) -> tuple[str, str, Path] | None:
    """``(digest, arch, path)`` of the workload binary a frozen labctl carries: the labctl
    image sets ``$LABCTL_PREBUILT_DIR`` to a folder holding ``<digest>/shmlab`` and
    ``<digest>/arch``, written by ``labctl build --self``. None when the variable is unset.
    Raises BuildError when it is set but holds no single such binary."""
    env = os.environ if env is None else env
    where = env.get(PREBUILT_ENV)
    if not where:
        return None
    found = sorted(p for p in Path(where).glob("*/" + BINARY) if (p.parent / "arch").is_file())
    if len(found) != 1:
        raise BuildError(f"{PREBUILT_ENV}={where} must hold exactly one <digest>/{BINARY} with an arch file; "
                         f"found {len(found)}")
    return found[0].parent.name, (found[0].parent / "arch").read_text().strip(), found[0]


# ==== compile ====


def _tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def compile_binary(src: Path, tc: Toolchain, digest: str, progress: Progress | None = None,
                   env: Mapping[str, str] | None = None) -> Path:
    """Return the path of the compiled binary for ``digest``, compiling it if it is not
    cached yet. Raises BuildError with the command line and the compiler's stderr tail."""
    out_dir = cache_dir(env) / digest
    binary = out_dir / BINARY
    if binary.is_file():
        return binary
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BuildError(f"cannot create the build cache {out_dir}: {e}") from e
    # compile next to the final name and rename: a concurrent build never sees half a file
    partial = out_dir / f".{BINARY}.{os.getpid()}.tmp"
    sources = sorted(p for p in source_files(src) if p.suffix == ".c")
    cmd = compile_command(tc, sources, partial)
    if progress is not None:
        first = " (first zig run for a target builds musl, ~30 s)" if tc.zig else ""
        progress(f"compiling shmlab for {tc.platform or tc.arch}{first}...")
    try:
        proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
    except FileNotFoundError as e:
        raise BuildError(f"C compiler not found: {shlex.join(cmd)}\n{e}") from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"compiling shmlab took more than {COMPILE_TIMEOUT_S:.0f}s: {shlex.join(cmd)}") from e
    except OSError as e:
        raise BuildError(f"cannot run the C compiler: {shlex.join(cmd)}\n{e}") from e
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        hint = ""
        if tc.zig and "No module named ziglang" in proc.stderr:
            hint = "\nhint: pip install ziglang, or set CC to a host C compiler with a static libc (CC=gcc)"
        raise BuildError(
            f"compiling shmlab failed (exit {proc.returncode}):\n$ {shlex.join(cmd)}\n{_tail(proc.stderr)}{hint}"
        )
    os.replace(partial, binary)
    return binary


# ==== image ====


def build_context(src: Path, binary: bytes) -> bytes:
    """A tar (in memory) with the Dockerfile, the binary and the ftok key file.

    Entries have fixed owners and mtimes so equal inputs give equal bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = [("Dockerfile", (src / "Dockerfile").read_bytes(), 0o644),
                   (BINARY, binary, 0o755),
                   ("shmlab-key", (src / "shmlab-key").read_bytes(), 0o644)]
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_labels(digest: str, platform: str = "") -> dict[str, str]:
    """Labels of the workload image. Deliberately not ``io.labctl.managed``:
    ``labctl clean`` removes run objects, never the (expensive) images."""
    labels = {IMAGE_LABEL: "shmlab", HASH_LABEL: digest}
    if platform:
        labels[PLATFORM_LABEL] = platform
    return labels


def image_ref(digest: str, plat: Platform, native: Platform) -> str:
    """``labctl/shmlab:<hash12>`` for the engine's own platform, with ``-<suffix>``
    for any other (``labctl/shmlab:<hash12>-arm64``)."""
    tag = digest[:12] if plat == native else f"{digest[:12]}-{plat.suffix}"
    return f"{REPO}:{tag}"


def _tag_latest(engine: ImageEngine, image: str, plat: Platform, native: Platform) -> None:
    """``:latest-<suffix>`` for every platform (compose files name a container's platform
    image by it), and ``:latest`` for the engine's own (the compose demo runs it)."""
    if plat == native:
        engine.tag_image(image, REPO, "latest")
    engine.tag_image(image, REPO, f"latest-{plat.suffix}")


def ensure_image(engine: ImageEngine, *, platform: Platform | None = None, force: bool = False,
                 progress: Progress | None = None) -> BuildResult:
    """Make sure the engine has the workload image of ``platform`` (default: the
    engine's own) for the current sources; a no-op (one image lookup) when it does.
    The engine's own platform also moves ``:latest`` (the compose demo runs it).

    Docker operations: ``info`` (architecture), ``image inspect``, and when
    building ``build`` (with ``--platform`` for a non-native platform) from an
    in-memory context plus ``tag``. A build holds the image's lock in the build cache
    (``buildlock``): a labctl building the same image meanwhile waits and finds it made.
    Raises BuildError (compile or docker build failed, sources missing) or
    EngineError (engine unreachable).
    """
    t0 = time.monotonic()
    arch = engine.architecture()
    if arch not in SUPPORTED_ARCHES:
        raise BuildError(f"unsupported engine architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHES)})")
    native = platforms.of_engine(arch)
    plat = platform or native
    src = source_dir()
    pre = prebuilt_binary()
    if pre is not None:  # a frozen labctl (the labctl image): no compiler, its own binary
        digest, pre_arch, prebuilt = pre
        if pre_arch != arch:
            raise BuildError(f"this labctl carries the shmlab workload for {pre_arch} but the engine runs {arch}; "
                             f"build the labctl image on (or for) a {arch} engine: labctl build --self")
        if plat != native:
            raise BuildError(f"this labctl (the labctl image) carries the workload for {native.name} only and no "
                             f"compiler; build {plat.name} images with labctl installed by pip")
    else:
        tc = toolchain(plat)
        digest = content_hash(src, tc)
    image = image_ref(digest, plat, native)
    with build_lock(cache_dir(), image):  # another labctl building it: wait, then find it made
        if not force and engine.image_exists(image):
            # :latest may point at another build (other sources, CC=...): the compose
            # demo runs :latest, so move it here; tagging is idempotent and cheap.
            _tag_latest(engine, image, plat, native)
            return BuildResult(image, False, time.monotonic() - t0, digest)
        binary = prebuilt if pre is not None else compile_binary(src, tc, digest, progress)
        return _build(engine, image, plat, native, digest, binary, src, progress, t0)


def _build(engine: ImageEngine, image: str, plat: Platform, native: Platform, digest: str, binary: Path,
           src: Path, progress: Progress | None, t0: float) -> BuildResult:
    """``ensure_image``'s image build from the compiled ``binary``: build, tag, prune older builds."""
    try:
        data = binary.read_bytes()
    except OSError as e:
        raise BuildError(f"cannot read the compiled binary {binary}: {e}") from e
    if progress is not None:
        progress(f"building image {image} for {plat.name} ({len(data) // 1024} KiB binary)...")
    context = build_context(src, data)
    if plat == native:
        engine.build_image(context, image, image_labels(digest, plat.name))
    else:
        engine.build_image(context, image, image_labels(digest, plat.name), platform=plat.name)  # type: ignore[call-arg]
    _tag_latest(engine, image, plat, native)
    prune = getattr(engine, "prune_images", None)
    if prune is not None:  # earlier builds would otherwise pile up, one per source change
        prune(f"{IMAGE_LABEL}=shmlab", image)
    return BuildResult(image, True, time.monotonic() - t0, digest)
