"""labctl build --self (labctl.images.selfimage) and the prebuilt workload of a frozen labctl, no engine."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from labctl.images import build

from labctl.images import selfimage
from labctl.errors import BuildError
from tests.unit.test_build import FakeEngine

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd2b1f2000)
\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f0c1c2c4000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0c1c2a5000)
\tlibmissing.so.3 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1c0c4000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1c2d9000)
"""


def test_parse_ldd_keeps_absolute_paths_only() -> None:
    assert selfimage.parse_ldd(LDD) == ["/lib/x86_64-linux-gnu/libdl.so.2", "/lib/x86_64-linux-gnu/libz.so.1",
                                        "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]


def _members(context: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_build_context_lays_out_the_scratch_image(tmp_path: Path) -> None:
    app = tmp_path / "labctl"
    (app / "_internal").mkdir(parents=True)
    (app / "labctl").write_bytes(b"\x7fELF boot")
    (app / "labctl").chmod(0o755)
    (app / "_internal" / "base_library.zip").write_bytes(b"zip")
    libc = tmp_path / "libc.so.6"
    libc.write_bytes(b"\x7fELF libc")
    ctx = selfimage.build_context(app, [str(libc)], b"\x7fELF shmlab", "abc123", "x86_64")
    m = _members(ctx)
    assert m["rootfs/tmp"].isdir() and m["rootfs/tmp"].mode == 0o1777  # PyInstaller, reports, tempfile
    assert m["rootfs/opt/labctl/labctl"].mode == 0o755
    assert m["rootfs/opt/labctl/_internal/base_library.zip"].mode == 0o644
    assert f"rootfs{libc}" in m  # a library lands at the path the loader looks at
    assert m["rootfs/opt/labctl/prebuilt/abc123/shmlab"].mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(ctx)) as tar:
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
        arch = tar.extractfile("rootfs/opt/labctl/prebuilt/abc123/arch").read()  # type: ignore[union-attr]
    assert arch == b"x86_64\n"
    assert "\nFROM scratch\n" in dockerfile
    assert 'ENTRYPOINT ["/opt/labctl/labctl"]' in dockerfile
    assert "LABCTL_PREBUILT_DIR=/opt/labctl/prebuilt" in dockerfile and "LABCTL_IN_CONTAINER=1" in dockerfile


def test_self_image_refuses_an_engine_of_another_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    with pytest.raises(BuildError, match="engine runs aarch64 but this machine is x86_64"):
        selfimage.ensure_self_image(FakeEngine(arch="aarch64"))


def test_self_image_is_a_no_op_when_its_hash_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "host_arch", lambda: "x86_64")
    monkeypatch.setattr(build, "ensure_image", lambda engine, progress=None: build.BuildResult("w", False, 0, "d" * 64))
    monkeypatch.setattr(selfimage, "_pyinstaller_version", lambda: "6.0")
    engine = FakeEngine()
    digest = selfimage.self_hash("d" * 64, "x86_64")
    engine.images.add(f"labctl/labctl:{digest[:12]}")
    res = selfimage.ensure_self_image(engine)
    assert not res.built and res.image == f"labctl/labctl:{digest[:12]}"
    assert {t for _, _, t in engine.tags} == {selfimage.__version__, "latest"}
    assert not engine.builds


def test_self_hash_follows_the_workload_and_the_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selfimage, "_pyinstaller_version", lambda: "6.0")
    a = selfimage.self_hash("a" * 64, "x86_64")
    assert a == selfimage.self_hash("a" * 64, "x86_64")
    assert a != selfimage.self_hash("b" * 64, "x86_64") != selfimage.self_hash("a" * 64, "aarch64")


def test_missing_pyinstaller_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    with pytest.raises(BuildError, match=r"pip install 'labctl\[image\]'"):
        selfimage._pyinstaller_version()


# ==== the prebuilt workload of a frozen labctl ====


def _prebuilt(tmp_path: Path, digest: str = "f" * 64, arch: str = "x86_64") -> Path:
    d = tmp_path / "prebuilt" / digest
    d.mkdir(parents=True)
    (d / "shmlab").write_bytes(b"\x7fELF prebuilt")
    (d / "arch").write_text(arch + "\n")
    return tmp_path / "prebuilt"


def test_frozen_labctl_builds_the_workload_from_its_prebuilt_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_PREBUILT_DIR", str(_prebuilt(tmp_path)))
    monkeypatch.setenv("CC", "/nonexistent-compiler")  # never asked
    engine = FakeEngine()
    res = build.ensure_image(engine)
    assert res.built and res.image == "labctl/shmlab:" + "f" * 12 and res.hash == "f" * 64
    with tarfile.open(fileobj=io.BytesIO(engine.builds[0][0])) as tar:
        assert tar.extractfile("shmlab").read() == b"\x7fELF prebuilt"  # type: ignore[union-attr]


def test_frozen_labctl_refuses_an_engine_of_another_architecture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_PREBUILT_DIR", str(_prebuilt(tmp_path, arch="x86_64")))
    with pytest.raises(BuildError, match="carries the shmlab workload for x86_64 but the engine runs aarch64"):
        build.ensure_image(FakeEngine(arch="aarch64"))


def test_prebuilt_dir_must_hold_one_binary(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BuildError, match="exactly one"):
        build.prebuilt_binary({"LABCTL_PREBUILT_DIR": str(empty)})
    assert build.prebuilt_binary({}) is None
