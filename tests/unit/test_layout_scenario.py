"""Layouts in scenario files: validation (positions, types, every ABI) and judging (fake probe)."""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path

import pytest

from labctl.errors import ScenarioErrors
from labctl.layout import from_c
from labctl.scenario import load_file
from labctl.scenario.kinds.file import FileCheck
from labctl.scenario.kinds.segment import SegmentCheck
from labctl.scenario.model import Expect
from tests.unit.test_checks import FakeObs, run

HEADER = """\
#include <stdint.h>
#define N 3
enum mode { IDLE, ACTIVE = 4 };
struct inner { int16_t a; double d; };
struct shared {
    uint32_t count;
    char name[20];
    double ratio;
    float gain;
    int32_t vec[N];
    struct inner in;
    enum mode mode;
    unsigned char blob[2];
    _Bool ok;
};
"""


def scenario(tmp_path: Path, check: str, header: str = HEADER) -> Path:
    (tmp_path / "include").mkdir(exist_ok=True)
    (tmp_path / "include" / "shared.h").write_text(header)
    body = textwrap.indent(textwrap.dedent(check).strip(), "      ")
    text = f"""\
version: 1
name: t
description: t
containers:
  app: {{workload: sysv-writer, ipc: shareable}}
checks:
  - segment:
      in: app
      key: 1
{body}
"""
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ScenarioErrors) as e:
        load_file(str(path))
    return [str(x) for x in e.value.errors]


def test_header_layout_and_typed_fields(tmp_path: Path) -> None:
    path = scenario(tmp_path, """
        layout: {header: include/shared.h, struct: shared}
        fields: {count: {gt: 0}, name: abc, ratio: 0.25, gain: 0.1, "vec[2]": -7, in.d: {approx: 1.5, tol: 0.01},
                 mode: ACTIVE, blob: "0x00FF", ok: true}
    """)
    body = load_file(str(path)).checks[0].body
    assert isinstance(body, SegmentCheck) and body.layout is not None
    got = dict(body.fields)
    assert got["mode"] == Expect("eq", 4)  # the enumerator's value
    assert got["blob"] == Expect("eq", "0x00ff")
    assert got["gain"].value != 0.1 and abs(got["gain"].value - 0.1) < 1e-8  # 0.1 as a 32-bit float
    assert got["in.d"] == Expect("approx", (1.5, 0.01))
    assert body.layout.size("x86_64") == body.layout.size("aarch64") == 72


@pytest.mark.parametrize("fields, message", [
    ("{cont: 1}", "no field 'cont' in struct shared (did you mean 'count'?)"),
    ("{vec: 1}", "'vec' is an array (int[3]"),
    ('{"vec[3]": 1}', "index 3 is out of range for 'vec'"),
    ("{in: 1}", "'in' is struct inner; address a member as in.a"),
    ("{ratio: fast}", "'ratio' is double: expected a number, got 'fast'"),
    ("{count: {approx: 1}}", "approx compares floating-point fields only"),
    ("{count: -1}", "-1 is out of its range 0..4294967295"),
    ("{mode: MAYBE}", "no enumerator 'MAYBE' (expected one of IDLE, ACTIVE"),
    ('{blob: "0x00"}', "give 4 hex digits, not 2"),
    ("{name: {gt: 1}}", "'gt' compares numbers"),
    ("{name: " + "x" * 21 + "}", "more than the field holds"),
])
def test_field_errors_are_located(tmp_path: Path, fields: str, message: str) -> None:
    path = scenario(tmp_path, f"""
        layout: {{header: include/shared.h, struct: shared}}
        fields: {fields}
    """)
    [err] = errors(path)
    assert err.startswith(f"{path}:11:") and "checks[0].segment.fields." in err and message in err, err


def test_bitfield_refused_at_validation_with_both_positions(tmp_path: Path) -> None:
    path = scenario(tmp_path, """
        layout: {header: include/shared.h, struct: flags}
    """, header="struct flags {\n  unsigned int a : 3;\n  int b;\n};\n")
    [err] = errors(path)
    assert err.startswith(f"{path}:10:24: checks[0].segment.layout.header:"), err
    assert f"{tmp_path}/include/shared.h:2:16: bit-field 'a'" in err


def test_c_text_errors_point_into_the_scenario(tmp_path: Path) -> None:
    path = scenario(tmp_path, """
        layout:
          struct: s
          c: |
            struct s {
              int ok;
              int bad : 2;
            };
    """)
    [err] = errors(path)
    assert err.startswith(f"{path}:15:17: checks[0].segment.layout.c: bit-field 'bad'"), err


@pytest.mark.parametrize("layout, message", [
    ("{header: include/none.h, struct: s}", "no such header file"),
    ("{header: include/shared.h, struct: shard}", "no struct 'shard' in the C text (did you mean 'shared'?)"),
    ('{c: "struct s { long double x; };", struct: s}', "long double is not supported"),
    ('{c: "struct s { void (*f)(void); struct t *p; int (g)(int); };", struct: s}', "a function type"),
    ('{c: "struct s { struct undefined u; };", struct: s}', "struct undefined is an incomplete type"),
    ('{c: "struct s { int x[0]; int y; };", struct: s}', "'x' has no length and is not the last member"),
    ('{c: "#include <nonexistent.h>", struct: s}', "'nonexistent.h' file not found"),
    ('{c: "struct s { int x; ", struct: s}', "cannot parse the C text"),
    ('{c: "typedef int v4 __attribute__((vector_size(16))); struct s { v4 x; };", struct: s}',
     "vector_size"),
])
def test_unlayoutable_is_refused_at_validation(tmp_path: Path, layout: str, message: str) -> None:
    path = scenario(tmp_path, f"layout: {layout}")
    [err] = errors(path)
    assert err.startswith(f"{path}:") and message in err, err


def test_explicit_list_still_works_with_new_types(tmp_path: Path) -> None:
    path = scenario(tmp_path, """
        layout: [{name: n, offset: 0, type: uint16}, {name: r, offset: 8, type: double},
                 {name: s, offset: 16, type: "cstring[100]"}, {name: b, offset: 116, type: "bytes[3]"}]
        fields: {n: 3, r: {approx: 0.5}, s: hello, b: "0x010203"}
    """)
    body = load_file(str(path)).checks[0].body
    assert body.layout.size("x86_64") == 119


# --------------------------------------------------------------------------- judging

LAYOUT = from_c(HEADER, "shared", base_dir="/")
SEG = {"key": 1, "shmid": 3, "perms": 0o666, "dest": False, "size": 72, "nattch": 1}


def test_judge_reads_named_fields_and_names_a_mismatch() -> None:
    fields = (("ratio", Expect("eq", 0.25)), ("mode", Expect("eq", 4)), ("name", Expect("eq", "abc")))
    obs = FakeObs(segments={"w": [dict(SEG, fields={"ratio": 0.25, "mode": 4, "name": "abc"})]})
    assert run(SegmentCheck("w", key=1, layout=LAYOUT, fields=fields), obs).status == "passed"
    arg = obs.probe_calls[0][1][obs.probe_calls[0][1].index("--layout") + 1]
    assert arg == "ratio:24:f:8,mode:64:u:4,name:4:s:20"
    obs = FakeObs(segments={"w": [dict(SEG, fields={"ratio": 0.5, "mode": 0, "name": "abc"})]})
    res = run(SegmentCheck("w", key=1, layout=LAYOUT, fields=fields), obs, timeout=0.2)
    assert res.status == "failed"
    assert "field ratio (double): expected == 0.25, observed 0.5" in res.observed
    assert "field mode (enum mode): expected == 4 (ACTIVE), observed 0 (IDLE)" in res.observed


def test_judge_fails_a_layout_larger_than_the_segment_naming_both_sizes() -> None:
    obs = FakeObs(segments={"w": [dict(SEG, size=68, fields={"count": 1})]})
    res = run(SegmentCheck("w", key=1, layout=LAYOUT, fields=(("count", Expect("eq", 1)),)), obs, timeout=0.2)
    assert res.status == "failed"
    assert "the layout (struct shared in the C text) is 72 bytes but the segment is 68 bytes" in res.observed


def test_judge_floats_approx_and_float32() -> None:
    gain = 0.100000001  # 0.1f as the probe prints it (%.9g)
    fields = (("gain", Expect("eq", LAYOUT_GAIN)), ("in.d", Expect("approx", (1.5, 0.01))))
    obs = FakeObs(segments={"w": [dict(SEG, fields={"gain": gain, "in.d": 1.505})]})
    assert run(SegmentCheck("w", key=1, layout=LAYOUT, fields=fields), obs).status == "passed"
    obs = FakeObs(segments={"w": [dict(SEG, fields={"gain": gain, "in.d": 1.6})]})
    res = run(SegmentCheck("w", key=1, layout=LAYOUT, fields=fields), obs, timeout=0.2)
    assert res.status == "failed" and "field in.d (double): expected == 1.5 ± 0.01, observed 1.6" in res.observed


LAYOUT_GAIN = struct.unpack("<f", struct.pack("<f", 0.1))[0]


def test_file_in_dev_shm_is_read_in_the_ipc_namespace() -> None:
    class Obs(FakeObs):
        def probe_ipc(self, container, args, timeout=None):
            self.probe_calls.append((container, args))
            return {"event": "probe", "stat": {"exists": True, "dev": 1, "ino": 2, "size": 72,
                                               "fields": {"count": 9}}}

    obs = Obs()
    body = FileCheck("w", "/dev/shm/shared", layout=LAYOUT, fields=(("count", Expect("eq", 9)),))
    assert run(body, obs).status == "passed"
    assert obs.probe_calls[0][1][:3] == ["probe", "--stat", "/dev/shm/shared"]


def test_dev_shm_file_check_needs_a_shareable_namespace(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\nname: t\ndescription: t\ncontainers:\n  app: {workload: hold}\n"
                    "checks:\n  - file: {container: app, path: /dev/shm/x}\n")
    [err] = errors(path)
    assert "a probe reads it by joining that namespace, which must be shareable or host" in err
