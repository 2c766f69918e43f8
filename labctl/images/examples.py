"""Example programs that are not shmlab: ``images/<name>/`` (C sources plus a Dockerfile).

They stand for "your own program" in the library (``own-program-layout`` decodes the
segment of ``images/sensor`` from the program's own header). Each builds like the
workload image (a static binary from ``labctl.images.build``'s toolchain, a FROM-scratch image
from an in-memory context), tagged ``labctl/<name>:<hash12>`` and ``:latest``.
``labctl run`` builds the ones its scenarios name (``image: labctl/<name>...``).

Docker operations (through ``build.ImageEngine``): ``image inspect``, ``build``, ``tag``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path

from labctl.images import build
from labctl.errors import BuildError

WORKLOAD = "shmlab"
LABEL_VALUE_PREFIX = "example-"


def images_root() -> Path:
    """``$LABCTL_IMAGES_DIR`` or the package's / checkout's ``images/``."""
    from labctl.images.library import images_dir

    override = os.environ.get("LABCTL_IMAGES_DIR")
    return Path(override) if override else images_dir()


def names() -> list[str]:
    """The example programs: folders of ``images/`` with a Dockerfile and C sources, but shmlab."""
    root = images_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != WORKLOAD and (p / "Dockerfile").is_file()
                  and any(p.glob("*.c")))


def referenced(images: Iterable[str]) -> list[str]:
    """The example names among image references (``labctl/sensor:latest`` -> ``sensor``)."""
    known = set(names())
    out = []
    for ref in images:
        repo = ref.split("@", 1)[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref.split("@", 1)[0]
        if repo.startswith("labctl/") and repo[len("labctl/"):] in known and repo[len("labctl/"):] not in out:
            out.append(repo[len("labctl/"):])
    return out


def _digest(src: Path, tc: build.Toolchain) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in src.iterdir() if p.is_file() and p.suffix in (".c", ".h") or p.name == "Dockerfile"):
        data = path.read_bytes()
        h.update(f"file {path.name} {len(data)}\n".encode())
        h.update(data)
    h.update(("flags " + " ".join(build.CFLAGS) + f"\ncompiler {tc.identity}\narch {tc.arch}\n").encode())
    return h.hexdigest()


def _compile(name: str, src: Path, tc: build.Toolchain, digest: str) -> bytes:
    out_dir = build.cache_dir() / f"{name}-{digest}"
    binary = out_dir / name
    if not binary.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = out_dir / f".{name}.{os.getpid()}.tmp"
        cmd = build.compile_command(tc, sorted(src.glob("*.c")), partial)
        try:
            proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=build.COMPILE_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BuildError(f"cannot compile {name}: {e}") from e
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
            raise BuildError(f"compiling {name} failed (exit {proc.returncode}):\n{tail}")
        os.replace(partial, binary)
    return binary.read_bytes()


def _context(src: Path, name: str, binary: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry, data, mode in (("Dockerfile", (src / "Dockerfile").read_bytes(), 0o644), (name, binary, 0o755)):
            info = tarfile.TarInfo(entry)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure(engine: build.ImageEngine, name: str, *, force: bool = False,
           progress: build.Progress | None = None) -> build.BuildResult:
    """Make sure ``labctl/<name>:<hash12>`` (and ``:latest``) exists for ``images/<name>``;
    one image lookup when it does. Raises BuildError (no such example, compile or build failed)."""
    t0 = time.monotonic()
    src = images_root() / name
    if name not in names():
        raise BuildError(f"no example program {name!r} in {images_root()} (known: {', '.join(names()) or 'none'})")
    tc = build.toolchain(engine.architecture())
    digest = _digest(src, tc)
    repo = f"labctl/{name}"
    image = f"{repo}:{digest[:12]}"
    if not force and engine.image_exists(image):
        engine.tag_image(image, repo, "latest")
        return build.BuildResult(image, False, time.monotonic() - t0, digest)
    if progress is not None:
        progress(f"building example image {image}...")
    binary = _compile(name, src, tc, digest)
    engine.build_image(_context(src, name, binary), image,
                       {build.IMAGE_LABEL: LABEL_VALUE_PREFIX + name, build.HASH_LABEL: digest})
    engine.tag_image(image, repo, "latest")
    return build.BuildResult(image, True, time.monotonic() - t0, digest)
