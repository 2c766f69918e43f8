"""labctl.images.platforms without an engine: names, native vs emulated, and the emulation
check against a fake binfmt_misc directory (present, missing, disabled, no F flag,
not mounted), since the real one on a test machine must not be touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from labctl.images import platforms
from labctl.errors import UsageError

ARM64 = platforms.parse("linux/arm64")
ARMV7 = platforms.parse("linux/arm/v7")
I386 = platforms.parse("linux/386")
AMD64 = platforms.parse("linux/amd64")

# What /proc/sys/fs/binfmt_misc/qemu-aarch64 says on a Debian machine set up as the README says.
ENTRY = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def binfmt(tmp_path: Path, entries: dict[str, str], mounted: bool = True) -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    if mounted:
        (d / "register").write_text("")
        (d / "status").write_text("enabled\n")
    for name, text in entries.items():
        (d / name).write_text(text)
    return d


def test_names_and_aliases() -> None:
    assert platforms.names() == ["linux/amd64", "linux/arm64", "linux/386", "linux/arm/v7"]
    assert platforms.parse("linux/arm64/v8") is ARM64
    assert platforms.parse("LINUX/ARM") is ARMV7
    assert (ARM64.zig_target, I386.zig_target, ARMV7.zig_target) == (
        "aarch64-linux-musl", "x86-linux-musl", "arm-linux-musleabihf")


def test_unknown_platform_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unsupported platform 'linux/riscv64' .supported: linux/amd64, "
                                         "linux/arm64, linux/386, linux/arm/v7"):
        platforms.parse("linux/riscv64")


def test_engine_platform() -> None:
    assert platforms.of_engine("x86_64") is AMD64
    assert platforms.of_engine("aarch64") is ARM64
    with pytest.raises(platforms.PlatformUnavailable) as info:
        platforms.of_engine("riscv64")
    assert info.value.exit_code == 3


def test_native_platforms_need_no_binfmt(tmp_path: Path) -> None:
    empty = binfmt(tmp_path, {}, mounted=False)
    assert platforms.require_runnable(AMD64, "x86_64", binfmt_dir=empty) is False
    assert platforms.require_runnable(I386, "x86_64", binfmt_dir=empty) is False  # IA32 runs natively
    assert platforms.require_runnable(ARM64, "aarch64", binfmt_dir=empty) is False


def test_registered_entry_with_f_flag_is_emulation(tmp_path: Path) -> None:
    d = binfmt(tmp_path, {"qemu-aarch64": ENTRY})
    assert platforms.emulation_state(ARM64, d).ok
    assert platforms.require_runnable(ARM64, "x86_64", binfmt_dir=d) is True


@pytest.mark.parametrize("entries, mounted, reason", [
    ({}, True, "binfmt_misc has no qemu-aarch64 entry"),
    ({}, False, "binfmt_misc is not mounted"),
    ({"qemu-aarch64": ENTRY.replace("enabled", "disabled")}, True, "the qemu-aarch64 entry is disabled"),
    ({"qemu-aarch64": ENTRY.replace("flags: POF", "flags: OC")}, True,
     "the qemu-aarch64 entry has no F flag .flags: OC., so its interpreter is not found inside containers"),
])
def test_missing_emulation_exits_3_with_the_steps(tmp_path: Path, entries: dict[str, str], mounted: bool,
                                                  reason: str) -> None:
    d = binfmt(tmp_path, entries, mounted)
    with pytest.raises(platforms.PlatformUnavailable, match=reason) as info:
        platforms.require_runnable(ARM64, "x86_64", binfmt_dir=d, conf_dir=Path("/usr/lib/binfmt.d"))
    err = info.value
    assert err.exit_code == 3
    text = str(err)
    assert text.startswith("linux/arm64 needs emulation on this x86_64 engine, and it is not set up: ")
    assert "apt-get install -y qemu-user-static" in text
    assert f"mount -t binfmt_misc binfmt_misc {d}" in text
    assert f"/usr/lib/binfmt.d/qemu-aarch64.conf > {d}/register" in text


def test_armv7_is_emulated_even_on_arm64(tmp_path: Path) -> None:
    d = binfmt(tmp_path, {})
    with pytest.raises(platforms.PlatformUnavailable, match="qemu-arm entry"):
        platforms.require_runnable(ARMV7, "aarch64", binfmt_dir=d)


@pytest.mark.parametrize("conf_flags, registered", [("OCF", "OCF"), ("POF", "POF"), ("OC", "OCF"), ("", "F")])
def test_install_steps_register_with_the_f_flag(tmp_path: Path, conf_flags: str, registered: str) -> None:
    """Run the printed steps' register line against fake files: the F flag is always there."""
    conf_dir = tmp_path / "binfmt.d"
    conf_dir.mkdir()
    line = r":qemu-aarch64:M::\x7fELF\x02:\xff\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:"
    (conf_dir / "qemu-aarch64.conf").write_text(line + conf_flags + "\n")
    d = binfmt(tmp_path, {})
    register = next(s for s in platforms.install_steps(ARM64, d, conf_dir) if s.endswith("/register"))
    subprocess.run(["sh", "-c", register], check=True)
    assert (d / "register").read_text() == line + registered + "\n"


# ==== the bench: other platforms only where native ====


def test_bench_placements_of_other_platforms() -> None:
    from labctl.bench.records import parse_config, placement_platform

    cfg = parse_config("", "64", "container,container-386,container-arm64", 100, False, 5.0)
    assert cfg.placements == ("container", "container-386", "container-arm64")
    assert placement_platform("container-armv7") is ARMV7 and placement_platform("container") is None
    with pytest.raises(UsageError, match="unknown placement 'container-mips'"):
        parse_config("", "64", "container-mips", 100, False, 5.0)


def test_bench_refuses_emulated_placements_with_the_reason() -> None:
    from labctl.bench import refuse_emulated

    refuse_emulated(("host", "container", "container-386"), "x86_64")  # i386 is native on x86_64
    refuse_emulated(("container-arm64",), "aarch64")
    with pytest.raises(UsageError) as info:
        refuse_emulated(("container", "container-arm64"), "x86_64")
    assert info.value.exit_code == 2
    assert str(info.value) == (
        "placement container-arm64 refused: linux/arm64 does not run natively on this x86_64 engine, only under "
        "qemu emulation, whose timings measure the emulator rather than the IPC. Run it on a machine whose CPU "
        "runs linux/arm64 code (aarch64).")


def test_a_disabled_entry_is_switched_back_on(tmp_path: Path) -> None:
    d = binfmt(tmp_path, {"qemu-aarch64": ENTRY.replace("enabled", "disabled")})
    state = platforms.emulation_state(ARM64, d)
    assert not state.ok and state.fix == f"echo 1 > {d}/qemu-aarch64"
    assert platforms.install_steps(ARM64, d)[-1] == f"echo 1 > {d}/qemu-aarch64"
