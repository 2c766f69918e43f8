"""``labctl build --self``: labctl itself as a ``FROM scratch`` image, ``labctl/labctl``.

For containerized CI (a job container with the engine socket mounted, or a ``docker:dind``
service). Nothing is pulled: the image is assembled here from what this machine has.

* labctl is frozen with PyInstaller (``--onedir``): this very Python, labctl, its
  dependencies, the scenario library and the workload sources, under ``/opt/labctl``.
* The few system libraries the frozen interpreter loads (glibc, its loader, libgcc_s for
  thread exit) are copied from this machine at the paths ``ldd`` reports. That is what
  ``staticx`` would pack into one file; copied as files they need no unpacking at every
  start, and staticx refuses interpreters built with an RPATH (pyenv's, for one).
* The workload binary is compiled here, for the engine's architecture, and shipped
  prebuilt (``$LABCTL_PREBUILT_DIR``): inside the container ``labctl build`` /
  ``labctl run`` build ``labctl/shmlab`` from it, with no compiler (zig and musl would
  add ~200 MB and a 30 s cold compile to every fresh CI job).

The image is tagged ``labctl/labctl:<hash12>`` (a hash of everything that went in), plus
``:<version>`` and ``:latest``; an unchanged tree is a no-op. PyInstaller freezes the
running interpreter, so the engine must run this machine's architecture.

Engine access goes through ``labctl.images.build.ImageEngine``; progress goes to a callable.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from labctl import __version__

from labctl.images import build

from labctl.images import library
from labctl.images.buildlock import build_lock
from labctl.errors import BuildError

REPO = "labctl/labctl"
APP_DIR = "opt/labctl"  # in the image, without the leading slash (tar member names)
PREBUILT_DIR = f"{APP_DIR}/prebuilt"
FREEZE_TIMEOUT_S = 900.0
# Imported lazily by optional commands (bench --chart) or only by the tests: not frozen.
EXCLUDED = ("matplotlib", "numpy", "PIL", "tkinter", "pytest", "_pytest", "hypothesis", "IPython", "ziglang")
ENTRY = "import sys\nfrom labctl.cli import main\nsys.exit(main())\n"

DOCKERFILE = f"""\
# labctl itself, for containerized CI: `docker run --rm -v /var/run/docker.sock:/var/run/docker.sock
# labctl/labctl run`. Made by `labctl build --self`: a PyInstaller-frozen labctl, the system
# libraries it loads, the prebuilt shmlab workload binary; no shell, no package manager.
FROM scratch
COPY rootfs/ /
ENV PATH=/{APP_DIR} HOME=/tmp TMPDIR=/tmp LABCTL_PREBUILT_DIR=/{PREBUILT_DIR} LABCTL_IN_CONTAINER=1
ENTRYPOINT ["/{APP_DIR}/labctl"]
CMD ["--help"]
"""

Progress = build.Progress


def _pyinstaller_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pyinstaller")
    except metadata.PackageNotFoundError:
        raise BuildError("building the labctl image needs PyInstaller: pip install 'labctl[image]'") from None


def _data_files() -> list[Path]:
    """Every file that goes into the image besides the interpreter: labctl's code and data."""
    files = sorted(p for p in library.PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted(p for p in library.library_dir().rglob("*") if p.is_file())  # yaml, include/
    files += build.source_files(build.source_dir())
    return files


def self_hash(shmlab_digest: str, arch: str) -> str:
    """sha256 over labctl's sources, library and workload sources, the workload binary's
    digest, the Python and PyInstaller versions and the architecture."""
    h = hashlib.sha256()
    for path in _data_files():
        data = path.read_bytes()
        h.update(f"file {path.name} {len(data)}\n".encode())
        h.update(data)
    h.update(f"shmlab {shmlab_digest}\narch {arch}\npython {sys.version}\n".encode())
    h.update(f"pyinstaller {_pyinstaller_version()}\nlabctl {__version__}\n".encode())
    return h.hexdigest()


# ==== freeze ====


def freeze(out: Path, progress: Progress | None = None) -> Path:
    """Freeze labctl with PyInstaller into ``out/dist/labctl`` (onedir); returns that folder.
    Cached: a folder already complete (``.done``) is returned as is. Raises BuildError."""
    app = out / "dist" / "labctl"
    if (out / ".done").is_file():
        return app
    _pyinstaller_version()
    out.mkdir(parents=True, exist_ok=True)
    entry = out / "labctl_entry.py"
    entry.write_text(ENTRY)
    data_sep = os.pathsep
    cmd = [sys.executable, "-m", "PyInstaller", "--onedir", "--name", "labctl", "--noconfirm", "--clean",
           "--log-level", "WARN", "--distpath", str(out / "dist"), "--workpath", str(out / "work"),
           "--specpath", str(out), "--paths", str(library.PACKAGE.parent), "--collect-submodules", "labctl",
           "--add-data", f"{library.library_dir()}{data_sep}labctl/_data/scenarios",
           "--add-data", f"{build.source_dir()}{data_sep}labctl/_data/images/shmlab"]
    for mod in EXCLUDED:
        cmd += ["--exclude-module", mod]
    cmd.append(str(entry))
    if progress is not None:
        progress("freezing labctl with PyInstaller (about a minute)...")
    try:
        proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=FREEZE_TIMEOUT_S, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"PyInstaller took more than {FREEZE_TIMEOUT_S:.0f}s") from e
    except OSError as e:
        raise BuildError(f"cannot run PyInstaller: {e}") from e
    if proc.returncode != 0 or not (app / "labctl").is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise BuildError(f"PyInstaller failed (exit {proc.returncode}):\n{tail}")
    (out / ".done").write_text("ok\n")
    return app


# ==== system libraries ====


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def parse_ldd(text: str) -> list[str]:
    """Absolute library paths from ``ldd`` output (``name => /path (0x..)`` or ``/path (0x..)``)."""
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (")[0].strip()
        else:
            target = line.split(" (")[0].strip()
        if target.startswith("/"):
            paths.append(target)
    return paths


def system_libraries(app: Path) -> list[str]:
    """The libraries outside ``app`` that its ELF files load (``ldd``), plus ``libgcc_s``
    (glibc loads it at thread exit). Libraries ``app`` bundles itself are left out (even
    where an RPATH makes ``ldd`` find the host's copy), except for the bootloader's own.
    Raises BuildError without ``ldd``."""
    bundled = {p.name for p in app.rglob("*") if p.is_file()}
    found: set[str] = set()
    for path in (p for p in app.rglob("*") if p.is_file() and _is_elf(p)):
        try:
            proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=60, check=False)
        except FileNotFoundError as e:
            raise BuildError("building the labctl image needs ldd (glibc's libc-bin)") from e
        # The bootloader (app/labctl) loads its libraries before it points the loader at
        # app/_internal, so it gets all of them; the rest only what app does not bundle.
        main = path == app / "labctl"
        found |= {lib for lib in parse_ldd(proc.stdout) if main or Path(lib).name not in bundled}
    libc = next((lib for lib in found if Path(lib).name.startswith("libc.so")), None)
    if libc is None:
        raise BuildError(f"ldd found no libc for {app}/labctl: is this a glibc system?")
    gcc_s = Path(libc).parent / "libgcc_s.so.1"
    if gcc_s.is_file():
        found.add(str(gcc_s))
    return sorted(found)


# ==== image ====


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = mode
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def build_context(app: Path, libs: list[str], shmlab: bytes, digest: str, arch: str) -> bytes:
    """The build context (in memory): the Dockerfile and ``rootfs/`` with the frozen app
    under /opt/labctl, the libraries at their own paths, the prebuilt workload and /tmp."""
    buf = io.BytesIO()
    dirs: set[str] = set()

    def parents(name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                _add(tar, d, None, 0o755)

    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "Dockerfile", DOCKERFILE.encode(), 0o644)
        _add(tar, "rootfs", None, 0o755)
        _add(tar, "rootfs/tmp", None, 0o1777)
        dirs.update({"rootfs", "rootfs/tmp"})
        for path in sorted(p for p in app.rglob("*") if p.is_file()):
            name = f"rootfs/{APP_DIR}/{path.relative_to(app).as_posix()}"
            parents(name)
            _add(tar, name, path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644)
        for lib in libs:
            name = "rootfs" + lib
            parents(name)
            _add(tar, name, Path(lib).resolve().read_bytes(), 0o755)
        name = f"rootfs/{PREBUILT_DIR}/{digest}/{build.BINARY}"
        parents(name)
        _add(tar, name, shmlab, 0o755)
        _add(tar, f"rootfs/{PREBUILT_DIR}/{digest}/arch", f"{arch}\n".encode(), 0o644)
    return buf.getvalue()


def image_labels(digest: str) -> dict[str, str]:
    """Like the workload image's: ``io.labctl.image``, never ``io.labctl.managed``."""
    return {build.IMAGE_LABEL: "labctl", build.HASH_LABEL: digest}


def ensure_self_image(engine: build.ImageEngine, *, force: bool = False,
                      progress: Progress | None = None) -> build.BuildResult:
    """Make sure the engine has ``labctl/labctl:<hash12>``, tagged ``:<version>`` and
    ``:latest``, for the current labctl; a no-op (two image lookups) when it does.

    Docker operations: ``info``, ``image inspect``, and when building, the workload image
    (``labctl.images.build.ensure_image``), ``build`` from an in-memory context and ``tag``.
    Raises BuildError (PyInstaller missing or failing, engine of another architecture,
    docker build failed) or EngineError (engine unreachable).
    """
    t0 = time.monotonic()
    arch = engine.architecture()
    host = build.host_arch()
    if arch != host:
        raise BuildError(f"the engine runs {arch} but this machine is {host}: PyInstaller freezes this machine's "
                         f"Python, so build the labctl image on a {arch} machine")
    workload = build.ensure_image(engine, progress=progress)
    digest = self_hash(workload.hash, arch)
    image = f"{REPO}:{digest[:12]}"
    with build_lock(build.cache_dir(), image):  # another labctl freezing it: wait, then find it made
        if not force and engine.image_exists(image):
            for tag in (__version__, "latest"):
                engine.tag_image(image, REPO, tag)
            return build.BuildResult(image, False, time.monotonic() - t0, digest)
        return _build_self(engine, image, digest, workload, arch, progress, t0)


def _build_self(engine: build.ImageEngine, image: str, digest: str, workload: build.BuildResult, arch: str,
                progress: Progress | None, t0: float) -> build.BuildResult:
    """``ensure_self_image``'s build: freeze labctl, build the image, tag it, prune older ones."""
    if build.prebuilt_binary() is not None:
        raise BuildError("this labctl is itself the frozen one (the labctl image): build the image from a pip install")
    tc = build.toolchain(arch)
    shmlab = build.compile_binary(build.source_dir(), tc, workload.hash, progress).read_bytes()
    cache = build.cache_dir() / "self" / digest
    try:
        app = freeze(cache, progress)
    except OSError as e:
        raise BuildError(f"cannot write the freeze cache {cache}: {e}") from e
    libs = system_libraries(app)
    context = build_context(app, libs, shmlab, workload.hash, arch)
    if progress is not None:
        progress(f"building image {image} ({len(context) // (1024 * 1024)} MiB context, {len(libs)} system libraries)...")
    engine.build_image(context, image, image_labels(digest))
    for tag in (__version__, "latest"):
        engine.tag_image(image, REPO, tag)
    prune = getattr(engine, "prune_images", None)
    if prune is not None:
        prune(f"{build.IMAGE_LABEL}=labctl", image)
    return build.BuildResult(image, True, time.monotonic() - t0, digest)

