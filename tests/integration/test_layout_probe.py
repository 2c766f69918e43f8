"""Layouts through the real probe: what validates, a run can evaluate.

A holder container from the workload image runs in the host's IPC namespace with a host
directory mounted, so the test itself writes the bytes: a SysV segment (sysv_ipc), a file
and a /dev/shm object. Scenario text with a ``{c: ..., struct: ...}`` layout and
expectations is validated by labctl, and the resulting check is evaluated by labctl's
evaluator with the probe running in that container (``docker exec``), exactly as a run
does. Expected values are computed here from the chosen bytes with ``struct``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import sysv_ipc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.checks.evaluate import evaluate
from labctl.layout import Layout
from labctl.layout.laid_out import Array, CType, Record, Scalar, is_bytes, is_text
from labctl.scenario import load_text

# Not alone, although the holder is in the host's IPC namespace: what the tests make there is
# always in use by this process while it exists (the segments it created, the /dev/shm file it
# keeps open), which another test's leak guard takes for a live program's, not for its leak.
pytestmark = pytest.mark.integration

SCENARIO = "layout-probe"


class Holder:
    """The probe's container (host IPC, a host dir at /data) as a check Observation."""

    def __init__(self, client: docker.DockerClient, image: str, engine: Any, data: Path) -> None:
        self.engine = engine
        self.client, self.image, self.data = client, image, data
        self.container = self._start()

    def _start(self) -> Any:
        run_id = str(uuid.uuid4())
        labels = {"io.labctl.managed": "true", "io.labctl.run-id": run_id, "io.labctl.scenario": SCENARIO,
                  "io.labctl.role": "holder", "io.labctl.pid": str(os.getpid())}
        container = self.client.containers.create(
            self.image, ["hold"], name=f"labctl-{run_id[:8]}-{SCENARIO}-holder", labels=labels, ipc_mode="host",
            volumes={str(self.data): {"bind": "/data", "mode": "ro"}}, user="0:0")
        container.start()
        return container

    def _probe(self, args: list[str]) -> dict:
        try:
            code, out = self.container.exec_run(["/shmlab", *args])
        except docker.errors.NotFound:  # a `labctl clean` elsewhere on the shared engine took it
            self.container = self._start()
            code, out = self.container.exec_run(["/shmlab", *args])
        assert code == 0, out
        [line] = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        data: dict = json.loads(line)
        return data

    # the Observation protocol (what segment and file checks use)
    def probe_ipc(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        return self._probe(args)

    def probe_file(self, container: str, args: list[str], timeout: float | None = None) -> dict:
        return self._probe(args)

    def architecture(self) -> str:
        return str(self.engine.architecture())

    def output(self, container: str) -> Any:
        return None

    def close(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def holder(docker_client: docker.DockerClient, shmlab_image: str, engine: Any,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Holder, Path]]:
    data = tmp_path_factory.mktemp("layout-data")
    h = Holder(docker_client, shmlab_image, engine, data)
    try:
        yield h, data
    finally:
        h.close()


# --------------------------------------------------------------------------- expectations from bytes


def _leaves(t: CType, prefix: str, off: int, cap: int = 3) -> Iterator[tuple[str, int, CType]]:
    if isinstance(t, Record):
        for m in t.members:
            name = prefix if m.name is None else (f"{prefix}.{m.name}" if prefix else m.name)
            yield from _leaves(m.type, name, off + m.offset, cap)
    elif isinstance(t, Array) and not (is_text(t) or is_bytes(t)):
        for i in range(min(t.count, cap)):
            yield from _leaves(t.elem, f"{prefix}[{i}]", off + i * t.elem.size, cap)
    elif not (isinstance(t, Array) and t.count == 0):
        yield prefix, off, t


def _value(t: CType, raw: bytes) -> Any:
    if isinstance(t, Array):
        if is_text(t):
            return raw.split(b"\0", 1)[0].decode("latin-1")
        return "0x" + raw.hex()
    assert isinstance(t, Scalar)
    if t.kind == "b":
        return raw[0] != 0
    if t.kind == "f":
        return struct.unpack("<f" if t.size == 4 else "<d", raw)[0]
    return int.from_bytes(raw, "little", signed=t.kind == "i")


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        return f"{v:.17e}"
    return json.dumps(v)


def expectations(layout: Layout, abi: str, data: bytes, cap: int = 3) -> dict[str, Any]:
    rec = layout.record(abi)
    return {p: _value(t, data[off:off + t.size]) for p, off, t in _leaves(rec, "", 0, cap)}


def check_text(where: str, c: str, struct_name: str, fields: dict[str, Any]) -> str:
    """A scenario whose one check is ``where`` (``segment:\n      in: app...``) with a C layout."""
    flds = ", ".join(f'"{k}": {_yaml(v)}' for k, v in fields.items())
    return (
        "version: 1\nname: layout-probe\ndescription: generated\n"
        "containers:\n  app: {workload: hold, ipc: host}\n"
        f"checks:\n  - {where}\n"
        f"      layout:\n        struct: {struct_name}\n        c: {json.dumps(c)}\n"
        f"      fields: {{{flds}}}\n"
    )


def run_check(h: Holder, text: str) -> Any:
    scen = load_text(text, "<generated>", base_dir="/")
    return evaluate(scen.checks[0], h, hard_deadline=None)


# --------------------------------------------------------------------------- every type, three storages

EVERY_TYPE = """
#include <stdint.h>
enum state { IDLE = 0, BUSY = 7, FAULT = -1 };
struct pair { int16_t a; double b; };
struct all {
    char c; signed char sc; unsigned char uc; short s; unsigned short us; int i; unsigned u;
    long l; unsigned long ul; long long ll; unsigned long long ull;
    int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32; int64_t i64; uint64_t u64;
    _Bool b; float f; double d; enum state st; void *p;
    char name[37]; unsigned char raw[5]; int32_t v[3]; double m[2][2]; char names[2][9];
    struct pair pr; union { uint32_t w; float wf; } un; struct pair prs[2];
};
"""


def _filled(size: int, seed: int) -> bytearray:
    rng = __import__("random").Random(seed)
    return bytearray(rng.randrange(256) for _ in range(size))


def _portable(buf: bytearray, layout: Layout, abi: str, seed: int) -> bytearray:
    """Printable text in char[N] (plain YAML) and plain char values below 128: plain char is
    signed on x86 and unsigned on ARM, and validation accepts only what holds on both."""
    for _, off, t in _leaves(layout.record(abi), "", 0, cap=10**6):
        if isinstance(t, Array) and is_text(t):
            text = bytes(33 + (b % 90) for b in buf[off:off + t.size])
            cut = seed % (t.size + 1)
            buf[off:off + t.size] = (text[:cut] + b"\0" * t.size)[:t.size]
        elif isinstance(t, Scalar) and t.cname == "char":
            buf[off] &= 0x7F
    return buf


def _put_text(buf: bytearray, layout: Layout, abi: str, path: str, text: bytes) -> None:
    leaf = layout.leaf(path, abi)
    buf[leaf.offset:leaf.offset + leaf.size] = text.ljust(leaf.size, b"\0")[:leaf.size]


def test_every_type_in_a_segment_a_file_and_dev_shm(holder: tuple[Holder, Path]) -> None:
    h, data = holder
    from labctl.layout import from_c

    abi = h.architecture()
    layout = from_c(EVERY_TYPE, "all", base_dir="/")
    size = layout.size(abi)
    buf = _portable(_filled(size, 1), layout, abi, 1)
    _put_text(buf, layout, abi, "name", "naïve-utf8".encode())
    _put_text(buf, layout, abi, "names[1]", b"12345678\0")
    _put_text(buf, layout, abi, "names[0]", b"full9char")  # no NUL: all 9 bytes
    fields = expectations(layout, abi, bytes(buf), cap=8)
    fields["name"] = "naïve-utf8"
    fields["st"] = struct.unpack_from("<I" if layout.leaf("st", abi).kind == "u" else "<i", buf,
                                      layout.leaf("st", abi).offset)[0]
    key = 0x4C41590 + os.getpid() % 1000
    seg = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=0o600, size=size)
    name = f"labctl-layout-{os.getpid()}"
    devshm = Path("/dev/shm") / name
    kept = devshm.open("wb")  # open while it exists: a live user, so no other test's leak
    try:
        seg.write(bytes(buf))
        (data / "all.bin").write_bytes(bytes(buf))
        kept.write(bytes(buf))
        kept.flush()
        for where in (f"segment:\n      in: app\n      key: {key}", "file:\n      container: app\n      path: /data/all.bin",
                      f"file:\n      container: app\n      path: /dev/shm/{name}"):
            res = run_check(h, check_text(where, EVERY_TYPE, "all", fields))
            assert res.status == "passed", (where, res.message)
        # one wrong expectation: the failure names the field, what was expected and what was seen
        wrong = dict(fields, **{"m[1][0]": 0.5, "name": "other"})
        res = run_check(h, check_text(f"segment:\n      in: app\n      key: {key}", EVERY_TYPE, "all", wrong))
        assert res.status == "failed"
        assert f"field m[1][0] (double): expected == 0.5, observed {fields['m[1][0]']!r}" in res.message
        assert "field name (char[37]): expected == 'other', observed 'naïve-utf8'" in res.message
        # a layout larger than the file: a failure that names both sizes
        (data / "short.bin").write_bytes(bytes(buf[:16]))
        res = run_check(h, check_text("file:\n      container: app\n      path: /data/short.bin", EVERY_TYPE,
                                      "all", {"c": fields["c"]}))
        assert res.status == "failed" and f"is {size} bytes but the file is 16 bytes" in res.message
    finally:
        seg.detach()
        seg.remove()
        devshm.unlink(missing_ok=True)
        kept.close()


# --------------------------------------------------------------------------- the invariant

SCALARS = ["char", "signed char", "unsigned char", "short", "unsigned short", "int", "unsigned int", "long",
           "unsigned long", "long long", "unsigned long long", "_Bool", "float", "double", "int8_t", "uint8_t",
           "int16_t", "uint32_t", "int64_t", "uint64_t", "void *", "enum e"]


@st.composite
def c_structs(draw: st.DrawFn, depth: int = 0) -> str:
    members = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["scalar"] * 6 + ["text", "bytes"] + (["nested"] if depth < 2 else [])))
        if kind == "text":
            t, dims = "char", f"[{draw(st.integers(1, 300))}]"
        elif kind == "bytes":
            t, dims = "unsigned char", f"[{draw(st.integers(1, 40))}]"
        elif kind == "nested":
            t, dims = draw(c_structs(depth + 1)), ""
        else:
            t = draw(st.sampled_from(SCALARS))
            dims = "".join(f"[{draw(st.integers(1, 3))}]" for _ in range(draw(st.integers(0, 2))))
        attr = draw(st.sampled_from(["", "", "", " __attribute__((aligned(8)))", " __attribute__((packed))"]))
        members.append(f"{t} m{i}{dims}{attr};")
    kw = draw(st.sampled_from(["struct", "struct", "union"]))
    packed = draw(st.sampled_from(["", "", " __attribute__((packed))"]))
    return f"{kw} {{ {' '.join(members)} }}{packed}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(body=c_structs(), seed=st.integers(0, 2**32 - 1))
def test_whatever_validates_a_run_can_evaluate(holder: tuple[Holder, Path], body: str, seed: int) -> None:
    h, data = holder
    from labctl.layout import from_c

    c = "#include <stdint.h>\nenum e { E0, E1 = 3 };\n" + body.replace("{", "s {", 1) + ";"
    abi = h.architecture()
    layout = from_c(c, "s", base_dir="/")
    size = layout.size(abi)
    buf = _portable(_filled(size, seed), layout, abi, seed)
    fields = expectations(layout, abi, bytes(buf))
    key = 0x4C42000 + (os.getpid() % 4096)
    seg = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=0o600, size=size)
    try:
        seg.write(bytes(buf))
        text = check_text(f"segment:\n      in: app\n      key: {key}", c, "s", fields)
        res = run_check(h, text)  # load_text raises if validation refuses: that is a failure too
        assert res.status == "passed", res.message
    finally:
        seg.detach()
        seg.remove()


# --------------------------------------------------------------------------- the library's own-program scenario

ROOT = Path(__file__).resolve().parents[2]


def test_own_program_wrong_expectation_names_field_expected_and_observed(tmp_path: Path, shmlab_image: str) -> None:
    """own-program-layout with two wrong values: the run fails and says which, what and what instead."""
    import subprocess
    import sys

    text = (ROOT / "scenarios" / "own-program-layout.yaml").read_text()
    header = ROOT / "scenarios" / "include" / "sensor.h"  # the header travels with the library
    assert "include/sensor.h" in text
    text = text.replace("include/sensor.h", str(header))
    text = text.replace("ratio: 0.25\n", "ratio: 0.5\n", 1).replace("state: SENSOR_RUNNING\n", "state: SENSOR_FAULT\n", 1)
    path = tmp_path / "own-program-wrong.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "labctl", "run", str(path), "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr[-2000:]
    [scen] = json.loads(proc.stdout)["scenarios"]
    [seg] = [c for c in scen["checks"] if c["name"].startswith("the segment")]
    assert seg["status"] == "failed"
    assert "field ratio (double): expected == 0.5, observed 0.25" in seg["message"]
    assert "field state (enum sensor_state): expected == 2 (SENSOR_FAULT), observed 1 (SENSOR_RUNNING)" in seg["message"]
    assert all(c["status"] == "passed" for c in scen["checks"] if c is not seg)
