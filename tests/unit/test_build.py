"""labctl.images.build without an engine: hashing, toolchain choice, errors, and
ensure_image against a fake engine with a fake compiler."""

from __future__ import annotations

import fcntl
import io
import shutil
import subprocess
import sys
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labctl.images import build

from labctl.images import platforms
from labctl.errors import BuildError

REAL_SOURCES = Path(__file__).resolve().parents[2] / "images" / "shmlab"

# A stand-in compiler: logs each call, writes a fake binary to the -o path, or
# fails like a compiler when FAKECC_FAIL is set.
FAKE_CC = """\
import os, sys
args = sys.argv[1:]
if "--version" in args:
    print("fakecc 1.0")
    sys.exit(0)
with open(os.environ["FAKECC_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKECC_FAIL"):
    sys.stderr.write("main.c:1:1: error: something broke\\n")
    sys.exit(1)
out = args[args.index("-o") + 1]
with open(out, "wb") as f:
    f.write(b"\\x7fELF fake shmlab")
"""


@dataclass
class FakeEngine:
    """The four Engine methods build.py uses, recording what it was asked."""

    arch: str = "x86_64"
    images: set[str] = field(default_factory=set)
    builds: list[tuple[bytes, str, dict[str, str]]] = field(default_factory=list)
    tags: list[tuple[str, str, str]] = field(default_factory=list)
    build_platforms: list[str | None] = field(default_factory=list)

    def architecture(self) -> str:
        return self.arch

    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def build_image(self, context: bytes, tag: str, labels: dict[str, str], platform: str | None = None) -> str:
        self.builds.append((context, tag, labels))
        self.build_platforms.append(platform)
        self.images.add(tag)
        return "sha256:fake"

    def tag_image(self, ref: str, repo: str, tag: str) -> None:
        self.tags.append((ref, repo, tag))
        self.images.add(f"{repo}:{tag}")


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A private copy of images/shmlab, so tests may edit it."""
    dst = tmp_path / "images" / "shmlab"
    shutil.copytree(REAL_SOURCES, dst, ignore=shutil.ignore_patterns("shmlab", "*.o"))
    return dst


@pytest.fixture
def fake_cc(tmp_path: Path, sources: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CC points at the fake compiler; sources and cache are private; returns the call log."""
    script = tmp_path / "fakecc.py"
    script.write_text(FAKE_CC)
    log = tmp_path / "cc.log"
    monkeypatch.setenv("CC", f"{sys.executable} {script}")
    monkeypatch.setenv("FAKECC_LOG", str(log))
    monkeypatch.delenv("FAKECC_FAIL", raising=False)
    monkeypatch.setenv("LABCTL_IMAGES_DIR", str(sources.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def zig(arch: str = "x86_64") -> build.Toolchain:
    return build.toolchain(arch, env={})


# ==== locations ====


def test_source_dir_defaults_to_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCTL_IMAGES_DIR", raising=False)
    assert build.source_dir() == REAL_SOURCES


def test_source_dir_env_override(sources: Path) -> None:
    assert build.source_dir({"LABCTL_IMAGES_DIR": str(sources.parent)}) == sources


def test_source_dir_missing_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="LABCTL_IMAGES_DIR"):
        build.source_dir({"LABCTL_IMAGES_DIR": str(tmp_path)})


def test_cache_dir_honours_xdg(tmp_path: Path) -> None:
    assert build.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "labctl" / "build"
    assert build.cache_dir({}) == Path.home() / ".cache" / "labctl" / "build"


# ==== hash ====


def test_hash_is_stable(sources: Path) -> None:
    assert build.content_hash(sources, zig()) == build.content_hash(sources, zig())
    assert len(build.content_hash(sources, zig())) == 64


@pytest.mark.parametrize("name", ["main.c", "conn_stat.h", "Dockerfile", "shmlab-key"])
def test_hash_changes_with_each_input_file(sources: Path, name: str) -> None:
    before = build.content_hash(sources, zig())
    with (sources / name).open("a") as f:
        f.write("\n")
    assert build.content_hash(sources, zig()) != before


def test_hash_changes_with_a_new_source_file(sources: Path) -> None:
    before = build.content_hash(sources, zig())
    (sources / "extra.c").write_text("int extra;\n")
    assert build.content_hash(sources, zig()) != before


def test_hash_ignores_files_outside_the_build(sources: Path) -> None:
    before = build.content_hash(sources, zig())
    (sources / "NOTES.txt").write_text("scratch\n")
    (sources / "shmlab").write_bytes(b"a stale local binary")
    assert build.content_hash(sources, zig()) == before


def test_hash_changes_with_arch_and_compiler(sources: Path) -> None:
    x86 = build.content_hash(sources, zig("x86_64"))
    arm = build.content_hash(sources, zig("aarch64"))
    other = build.Toolchain(("gcc",), "cc:gcc 12", "x86_64", zig=False)
    assert len({x86, arm, build.content_hash(sources, other)}) == 3


def test_hash_changes_with_flags(sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = build.content_hash(sources, zig())
    monkeypatch.setattr(build, "CFLAGS", (*build.CFLAGS, "-DEXTRA"))
    assert build.content_hash(sources, zig()) != before


# ==== toolchain ====


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_zig_is_the_default_for_both_arches(arch: str) -> None:
    tc = build.toolchain(arch, env={})
    assert tc.argv == (sys.executable, "-m", "ziglang", "cc", "-target", f"{arch}-linux-musl")
    assert tc.zig and tc.identity.startswith("ziglang:")


def test_cc_override_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    monkeypatch.setattr(build, "_cc_identity", lambda argv: "gcc (Debian 12.2.0) 12.2.0")
    tc = build.toolchain("x86_64", env={"CC": "gcc"})
    assert tc.argv == ("gcc",) and not tc.zig
    cmd = build.compile_command(tc, [Path("main.c"), Path("out.c")], tmp_path / "shmlab")
    assert cmd[0] == "gcc"
    assert "-static" in cmd and "-target" not in cmd
    for flag in ("-Wall", "-Wextra", "-std=c11", "-O2"):
        assert flag in cmd
    assert cmd[cmd.index("-o") + 1] == str(tmp_path / "shmlab")
    assert cmd[-2:] == ["main.c", "out.c"]


def test_cc_with_arguments_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    monkeypatch.setattr(build, "_cc_identity", lambda argv: "ccache gcc")
    assert build.toolchain("x86_64", env={"CC": "ccache gcc"}).argv == ("ccache", "gcc")


def test_cc_cannot_cross_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    with pytest.raises(BuildError, match="unset CC"):
        build.toolchain("aarch64", env={"CC": "gcc"})


def test_unsupported_arch() -> None:
    with pytest.raises(BuildError, match="unsupported engine architecture 'riscv64'"):
        build.toolchain("riscv64", env={})


def test_missing_cc_is_a_build_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    with pytest.raises(BuildError, match="cannot run"):
        build.toolchain("x86_64", env={"CC": "/nonexistent/cc-for-labctl"})


# ==== ensure_image with a fake engine ====


def test_build_then_noop(fake_cc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = FakeEngine()
    messages: list[str] = []
    first = build.ensure_image(engine, progress=messages.append)
    assert first.built and first.image == f"labctl/shmlab:{first.hash[:12]}"
    assert str(first) == first.image
    assert len(calls(fake_cc)) == 1
    [(context, tag, labels)] = engine.builds
    assert tag == first.image
    assert labels == {"io.labctl.image": "shmlab", "io.labctl.source-hash": first.hash,
                      "io.labctl.platform": "linux/amd64"}
    assert engine.build_platforms == [None]  # the engine's own platform: no --platform needed
    assert not any(k == "io.labctl.managed" for k in labels)
    assert engine.tags == [(first.image, "labctl/shmlab", "latest"), (first.image, "labctl/shmlab", "latest-amd64")]
    assert any("compiling shmlab for linux/amd64" in m for m in messages)

    second = build.ensure_image(engine, progress=messages.append)
    assert not second.built and second.image == first.image and second.hash == first.hash
    assert len(calls(fake_cc)) == 1 and len(engine.builds) == 1
    assert engine.tags[-2] == (first.image, "labctl/shmlab", "latest")  # :latest follows the sources
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # progress goes through the callable only


def test_context_holds_dockerfile_binary_and_key(fake_cc: Path) -> None:
    engine = FakeEngine()
    build.ensure_image(engine)
    with tarfile.open(fileobj=io.BytesIO(engine.builds[0][0])) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"Dockerfile", "shmlab", "shmlab-key"}
        assert members["shmlab"].mode == 0o755
        binary = tar.extractfile("shmlab")
        assert binary is not None and binary.read() == b"\x7fELF fake shmlab"


def test_binary_cache_avoids_recompiling(fake_cc: Path, tmp_path: Path) -> None:
    first = build.ensure_image(FakeEngine())
    assert (tmp_path / "cache" / "labctl" / "build" / first.hash / "shmlab").is_file()
    again = build.ensure_image(FakeEngine())  # image gone (new engine), binary cached
    assert again.built and len(calls(fake_cc)) == 1


def test_force_rebuilds_the_image(fake_cc: Path) -> None:
    engine = FakeEngine()
    build.ensure_image(engine)
    assert build.ensure_image(engine, force=True).built
    assert len(engine.builds) == 2


def test_source_change_gives_a_new_tag(fake_cc: Path, sources: Path) -> None:
    engine = FakeEngine()
    first = build.ensure_image(engine)
    with (sources / "main.c").open("a") as f:
        f.write("/* changed */\n")
    second = build.ensure_image(engine)
    assert second.built and second.image != first.image and len(calls(fake_cc)) == 2


def test_two_builds_of_one_image_at_once_build_it_once(fake_cc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two labctl processes (here two threads: each opens the lock file on its own, so flock
    keeps them apart as it does processes) ask for the same missing image: the second finds
    the lock held, waits for the first's build, and finds the image made."""
    engine, building, go, waits = FakeEngine(), threading.Event(), threading.Event(), threading.Event()
    real_build, real_flock = engine.build_image, fcntl.flock

    def slow_build(*args, **kwargs):  # noqa: ANN002, ANN003
        building.set()
        assert go.wait(30)
        return real_build(*args, **kwargs)

    def flock(fd: int, op: int) -> None:  # the lock as it is, telling when a caller has to wait
        try:
            real_flock(fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            waits.set()
            real_flock(fd, op)

    engine.build_image = slow_build  # type: ignore[method-assign]
    monkeypatch.setattr(fcntl, "flock", flock)
    results: list[build.BuildResult] = []
    first = threading.Thread(target=lambda: results.append(build.ensure_image(engine)))
    first.start()
    assert building.wait(30)
    second = threading.Thread(target=lambda: results.append(build.ensure_image(engine)))
    second.start()
    try:
        assert waits.wait(30), "the second build did not wait for the first"
    finally:
        go.set()
        first.join(30)
        second.join(30)
    # which thread appends first is the scheduler's: the first releases the lock inside
    # ensure_image, and the second may return before the first's append
    assert sorted(r.built for r in results) == [False, True] and results[0].image == results[1].image
    assert len(engine.builds) == 1 and len(calls(fake_cc)) == 1


def test_compile_error_names_command_and_stderr(fake_cc: Path, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("FAKECC_FAIL", "1")
    engine = FakeEngine()
    with pytest.raises(BuildError) as info:
        build.ensure_image(engine)
    message = str(info.value)
    assert "compiling shmlab failed (exit 1)" in message
    assert "fakecc.py" in message and "-Wall" in message and "main.c" in message
    assert "error: something broke" in message
    assert info.value.exit_code == 3
    assert engine.builds == []
    leftovers = [p for p in (tmp_path / "cache").rglob("*shmlab*") if p.parent.name != "locks"]
    assert leftovers == []  # no half-written binary is cached (the build's lock file may stay)


# ==== platforms ====


def test_other_platform_gets_a_suffixed_tag_and_platform_metadata(fake_cc: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC")  # CC builds the host's platform only; zig for the others
    monkeypatch.setattr(build, "_ziglang_version", lambda: "test")
    built: dict[str, str] = {}

    def fake_compile(src, tc, digest, progress=None, env=None):  # noqa: ANN001
        built[tc.platform] = " ".join(tc.argv)
        path = Path(build.cache_dir()) / digest / "shmlab"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
        return path

    monkeypatch.setattr(build, "compile_binary", fake_compile)
    engine = FakeEngine()
    native = build.ensure_image(engine)
    results = {name: build.ensure_image(engine, platform=platforms.parse(name))
               for name in ("linux/arm64", "linux/386", "linux/arm/v7")}
    assert results["linux/arm64"].image == f"labctl/shmlab:{results['linux/arm64'].hash[:12]}-arm64"
    assert results["linux/386"].image.endswith("-386") and results["linux/arm/v7"].image.endswith("-armv7")
    assert len({native.hash, *(r.hash for r in results.values())}) == 4  # no two platforms share a tag
    assert engine.build_platforms == [None, "linux/arm64", "linux/386", "linux/arm/v7"]
    assert [labels["io.labctl.platform"] for _, _, labels in engine.builds] == [
        "linux/amd64", "linux/arm64", "linux/386", "linux/arm/v7"]
    assert engine.tags == [(native.image, "labctl/shmlab", "latest"),  # :latest stays the engine's own
                           (native.image, "labctl/shmlab", "latest-amd64"),
                           *((r.image, "labctl/shmlab", f"latest-{r.image.rsplit('-', 1)[1]}") for r in results.values())]
    assert "-target aarch64-linux-musl" in built["linux/arm64"]
    assert "-target x86-linux-musl" in built["linux/386"]
    assert "-target arm-linux-musleabihf" in built["linux/arm/v7"]
    again = build.ensure_image(engine, platform=platforms.parse("linux/arm64"))
    assert not again.built and again.image == results["linux/arm64"].image


def test_host_cc_refuses_a_32_bit_platform() -> None:
    with pytest.raises(BuildError, match="linux/386 needs i386 code; unset CC"):
        build.toolchain(platforms.parse("linux/386"), env={"CC": "gcc"})


# ==== the real sources with the host compiler ====


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_sources_compile_without_warnings_with_gcc(host_shmlab) -> None:
    """Zero warnings with the host gcc (zig cc/musl is covered by the integration build): the
    session's host compile (tests/unit/conftest.py, build.CFLAGS; any warning makes stderr non-empty)."""
    assert host_shmlab.compiler == shutil.which("gcc")
    proc = host_shmlab.proc
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    run = subprocess.run([str(host_shmlab.binary), "--help"], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "Exit codes" in run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", platforms.names())
def test_sources_compile_without_warnings_with_zig(tmp_path: Path, name: str, zig_env: dict[str, str]) -> None:
    """Zero warnings with zig cc (musl), the default toolchain, for every platform (the
    32-bit ones check wide.h's static assertions). Warnings are a property of compiling:
    each translation unit is compiled (``-c``) with the build's flags, which needs only
    musl's headers; linking would first build musl for the target (about a minute per
    target on a fresh machine), and the engine's and arm64's links are run by every
    library run."""
    tc = build.toolchain(platforms.parse(name), env={})

    def compile_one(source: Path) -> str | None:
        cmd = [*build.compile_command(tc, [source], tmp_path / f"{source.stem}.o"), "-c", "-Werror"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=build.COMPILE_TIMEOUT_S,
                              env=zig_env)
        return f"{source.name}: exit {proc.returncode}\n{proc.stderr}" if proc.returncode != 0 or proc.stderr else None

    with ThreadPoolExecutor(max_workers=2) as pool:  # the units are independent: two at a time
        problems = [p for p in pool.map(compile_one, sorted(REAL_SOURCES.glob("*.c"))) if p]
    assert not problems, "\n".join(problems)
