"""Valid fixtures load into the model as documented, and match the JSON Schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl.scenario import load_file, load_text
from labctl.scenario.kinds.events import EventsCheck
from labctl.scenario.kinds.exit import ExitCheck
from labctl.scenario.kinds.file import FileCheck
from labctl.scenario.kinds.namespace import NamespaceCheck
from labctl.scenario.kinds.output import OutputCheck
from labctl.scenario.kinds.refused import RefusedCheck
from labctl.scenario.kinds.segment import SegmentCheck
from labctl.layout import BUILTINS, explicit
from labctl.scenario.model import After, Expect, MountSpec
from labctl.scenario.schema import json_schema
from labctl.scenario.yamlload import load_yaml

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "data" / "valid"
VALID_FILES = sorted(VALID.glob("*.yaml"))


def test_internals_example_loads() -> None:
    """The example of docs/internals.md section 3 (with its ellipses filled in)."""
    doc = (ROOT / "docs" / "internals.md").read_text()
    block = re.search(r"## 3\. Scenario files\s+```yaml\n(.*?)```", doc, re.S)
    assert block is not None
    text = block.group(1).replace("  ...\n", "  the example\n")
    s = load_text(text, "example.yaml", base_dir=str(ROOT / "scenarios"))
    assert s.name == "sysv-shareable"
    reader = s.container("reader")
    assert reader.after == (After("writer", "event", "attached", reader.after[0].pos),)
    assert reader.args == ("--reads", "5", "--rmid")
    assert s.checks[0].name == "reader sees the writer"


def test_sysv_shareable_model() -> None:
    s = load_file(str(VALID / "sysv-shareable.yaml"))
    assert (s.version, s.name, s.tags, s.timeout) == (1, "sysv-shareable", ("sysv", "sharing"), 60.0)
    assert s.description.splitlines()[0].startswith("A writer in a shareable")
    assert [(v.name, v.type, v.size, v.path) for v in s.volumes] == [
        ("data", "volume", None, None), ("fast", "tmpfs-volume", 16 * 2**20, None),
        ("shared", "tempdir", None, None), ("fixtures", "hostdir", None, "./fixtures")]
    w, r = s.containers
    assert w.args == ("--count", "100", "--hold", "detached", "--mode", "0666")  # as written
    assert w.ipc == "shareable" and r.ipc_donor == "writer"
    assert s.ipc_owner("reader") == "writer"
    assert [(m.source, m.target, m.read_only, m.tmpfs) for m in r.mounts] == [
        ("data", "/data", False, False), ("data", "/snap", True, False), ("fast", "/fast", False, False),
        ("shared", "/shared", False, False), ("fixtures", "/fixtures", True, False), (None, "/scratch", False, True)]
    assert isinstance(r.mounts[0], MountSpec) and r.mounts[0].pos.line == 24
    assert (r.user, r.shm_size, r.sysctls, r.env, r.timeout) == (
        "1000:1000", 64 * 2**20, (("kernel.shmmax", "1024"),), (("KEY", "value"),), 30.0)
    assert (r.read_only, r.network, r.privileged) == (True, "none", False)
    c0, c1, c2, c3, c4 = s.checks
    assert c0.body == EventsCheck("reader", "read", (("ip", Expect("eq", "127.0.0.1")),), 3, None, "count")
    assert (c0.timeout, c0.consistently) == (10.0, None)
    assert c1.name == "events reader read" and c1.consistently == 1.0
    assert c1.body.where == (("count", Expect("gt", 0)), ("ip", Expect("match", r"^127\.")))
    assert c2.body == ExitCheck("reader", (0,), None)
    assert c3.body == SegmentCheck("writer", 1234, None, True, Expect("eq", 68), Expect("ge", 1),
                                   Expect("eq", 0o666), False, BUILTINS["conn_stat"],
                                   (("ip", Expect("eq", "127.0.0.1")), ("count", Expect("gt", 0))))
    assert (c4.kind, c4.name, c4.body.host_ipc) == ("cleanup", "cleanup", False)
    assert s.requires == ()


def test_mmap_tempdir_model() -> None:
    s = load_file(str(VALID / "mmap-tempdir.yaml"))
    assert s.container("reader").after == (After("writer", "started", None, s.container("reader").after[0].pos),)
    assert [a.container for a in s.container("late").after] == ["writer", "reader"]
    f = s.checks[0].body
    assert f == FileCheck("writer", "/shared/stat", True, Expect("eq", 68), "reader",
                          explicit([("count", 0, "int32"), ("ip", 4, "cstring[64]")]),
                          (("count", Expect("ge", 1)), ("ip", Expect("eq", "127.0.0.1"))))
    assert s.checks[1].body == OutputCheck("reader", '"event": ?"read"', None, "stdout")
    assert s.checks[2].body == OutputCheck("reader", None, "SIGBUS", "stderr")
    assert s.checks[2].consistently == 0.5
    assert s.checks[3].body == ExitCheck("reader", (0, 30), None)


def test_private_refused_model() -> None:
    s = load_file(str(VALID / "private-refused.yaml"))
    other = s.container("other")
    assert [(a.container, a.condition, a.value) for a in other.after] == [
        ("donor", "output", "holding"), ("joiner", "exited", None)]
    assert other.args == ("--key", "0x4d2")
    assert s.checks[0].body == RefusedCheck("joiner", "non-shareable IPC")
    assert s.checks[1].body == NamespaceCheck("donor", "other", False)
    assert s.checks[2].name == "other cannot see a segment"
    assert s.checks[2].body == EventsCheck("other", "error", (("errno", Expect("eq", "ENOENT")),), 1, 1, None)


def test_host_and_image_records_opt_ins() -> None:
    s = load_file(str(VALID / "host-and-image.yaml"))
    app = s.container("app")
    assert (app.image, app.entrypoint, app.command, app.workload) == (
        "busybox:1.36", ("/bin/sh", "-c"), ("echo hello; sleep 1",), None)
    assert app.env == (("MODE", "0666"), ("DEBUG", "true"))
    assert [(flag, path) for flag, path, _ in s.requires] == [
        ("allow-host-paths", "volumes.fixtures.path"),
        ("allow-host-ipc", "containers.writer.ipc"),
        ("allow-privileged", "containers.app.network"),
        ("allow-privileged", "containers.app.cap_add"),
    ]  # read_only: false needs no opt-in (a writable layer of its own reaches nothing of the host's)
    seg = s.checks[1].body
    assert (seg.key, seg.perms, seg.layout) == (0x5000, Expect("eq", 0o600), explicit([("seq", 0, "uint64")]))
    assert s.checks[0].body.shmid_from == "writer" and s.checks[0].body.present is False
    assert s.checks[2].body == NamespaceCheck("writer", "host", True)
    assert s.checks[3].body == ExitCheck("app", (), "SIGBUS")
    assert s.checks[5].body.host_ipc is True
    assert s.timeout == 120.0


@pytest.mark.parametrize("path", [
    "./fixtures", "fixtures/sub", "sub/../fixtures",
])
def test_hostdir_inside_needs_no_opt_in(path: str, tmp_path: Path) -> None:
    text = (VALID / "sysv-shareable.yaml").read_text().replace("path: ./fixtures", f"path: {path}")
    assert load_text(text, str(tmp_path / "s.yaml")).requires == ()


@pytest.mark.parametrize("path", ["../elsewhere", "/etc", "fixtures/../../x", "."])
def test_hostdir_outside_needs_opt_in(path: str, tmp_path: Path) -> None:
    text = (VALID / "sysv-shareable.yaml").read_text().replace("path: ./fixtures", f"path: {path}")
    s = load_text(text, str(tmp_path / "s.yaml"))
    if path == ".":
        assert s.requires == ()  # the folder itself is inside
    else:
        assert [r[0] for r in s.requires] == ["allow-host-paths"]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_fixture_matches_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(load_yaml(path.read_text(), str(path)).plain())
