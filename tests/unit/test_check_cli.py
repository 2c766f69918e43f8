"""``labctl check`` from the command line: reports (text, JSON, SARIF validated against the
SARIF 2.1.0 schema), exit codes and --fail-on, suppression, --list-rules, the demo, the
bad-input corpus, and what Compose does before any rule runs (interpolation, extends,
-f merging, profiles)."""

from __future__ import annotations

import io
import json
import re
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from labctl import cli, lint, stack

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "check"
BAD = DATA / "bad"
SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORMAT", "FAIL_ON", "IGNORE", "PROFILE", "TOPOLOGY", "FILE", "ENV_FILE", "LIST_RULES"):
        monkeypatch.delenv(f"LABCTL_{name}", raising=False)
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)


def run(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | bytes | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        data = stdin.encode() if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    rc = cli.main(["check", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


PITFALL = """
    services:
      donor: {image: app, ipc: shareable, restart: always}
      reader: {image: app, ipc: "service:donor", user: "1000", restart: on-failure}
      other: {image: app, ipc: "service:donor", user: "2000"}
    """


# ---------------------------------------------------------------- reports

def test_text_is_file_line_col_rule_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "c.yml", PITFALL)
    rc, out, err = run([str(f)], capsys)
    assert rc == 1
    lines = out.splitlines()
    assert lines == sorted(lines, key=lambda ln: tuple(int(x) for x in ln.split(" ")[0].split(":")[1:3]))
    for ln in lines:
        assert re.fullmatch(rf"{re.escape(str(f))}:\d+:\d+ [a-z0-9-]+ \S.*", ln), ln
    assert {ln.split(" ")[1] for ln in lines} == {"restart-policy-on-donor", "uid-mismatch",
                                                  "restart-in-shared-namespace"}
    assert "1 input(s)" in err and "warning" in err


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "c.yml", PITFALL)
    rc, out, _ = run([str(f), "--format", "json"], capsys)
    doc = json.loads(out)
    assert rc == 1
    assert doc["summary"] == {"errors": 0, "warnings": 2, "notes": 1}
    first = doc["findings"][0]
    assert set(first) >= {"file", "line", "col", "rule", "severity", "message", "scenario"}
    ns = doc["topology"][0]
    assert ns["kind"] == "shareable" and [c["name"] for c in ns["containers"]] == ["donor", "reader", "other"]


def _validate_sarif(text: str) -> dict:
    doc = json.loads(text)
    cls = jsonschema.validators.validator_for(SARIF_SCHEMA)
    cls(SARIF_SCHEMA, format_checker=cls.FORMAT_CHECKER).validate(doc)
    return doc


def test_sarif_validates_against_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "c.yml", PITFALL)
    rc, out, _ = run([str(f), "--format", "sarif"], capsys)
    assert rc == 1
    doc = _validate_sarif(out)
    assert doc["version"] == "2.1.0"
    run0 = doc["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(lint.table())
    assert all(r["properties"]["scenario"] for r in rules)
    res = run0["results"]
    assert len(res) == 3
    for r in res:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        region = r["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert r["level"] in ("error", "warning", "note")


def test_sarif_from_stdin_and_clean_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, _ = run(["-", "--format", "sarif"], capsys, stdin="services:\n  a: {image: app, ipc: host}\n",
                     monkeypatch=monkeypatch)
    doc = _validate_sarif(out)
    assert rc == 1
    assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "stdin"
    rc, out, _ = run([str(ROOT / "docker-compose.yml"), "--format", "sarif"], capsys)
    assert rc == 0 and _validate_sarif(out)["runs"][0]["results"] == []


def test_the_sarif_validation_can_fail() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}))


# ---------------------------------------------------------------- exit codes, --fail-on, suppression

def test_fail_on_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    note_only = write(tmp_path, "n.yml", """
        services:
          holder: {image: app, ipc: shareable}
          app: {image: app, ipc: "service:holder", restart: always}
        """)
    assert run([str(note_only)], capsys)[0] == 0  # default --fail-on warning
    assert run([str(note_only), "--fail-on", "note"], capsys)[0] == 1
    monkeypatch.setenv("LABCTL_FAIL_ON", "note")
    assert run([str(note_only)], capsys)[0] == 1
    warn = write(tmp_path, "w.yml", "services:\n  a: {image: app, ipc: host}\n")
    assert run([str(warn), "--fail-on", "error"], capsys)[0] == 0
    assert run([str(warn), "--fail-on", "warning"], capsys)[0] == 1


def test_ignore_flag_and_unknown_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "w.yml", "services:\n  a: {image: app, ipc: host}\n")
    rc, out, _ = run([str(f), "--ignore", "host-ipc"], capsys)
    assert (rc, out) == (0, "")
    rc, _, err = run([str(f), "--ignore", "no-such-rule"], capsys)
    assert rc == 2 and "no rule no-such-rule" in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([], capsys)[0] == 2
    rc, _, err = run([str(ROOT / "no-such-file.yml")], capsys)
    assert rc == 2 and "no-such-file.yml: cannot read" in err


def test_help_states_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["check", "--help"])
    out = capsys.readouterr().out
    assert "Exit codes: 0" in out and "LABCTL_FAIL_ON" in out and "--format" in out


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--list-rules"], capsys)
    assert rc == 0
    for r in lint.table().values():
        assert f"{r.id} ({r.severity})" in out and f"scenarios/{r.scenario}.yaml" in out
    rc, out, _ = run(["--list-rules", "--format", "json"], capsys)
    assert [r["id"] for r in json.loads(out)] == list(lint.table())


def test_the_demo_prints_its_topology_and_no_finding(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["--topology", str(ROOT / "docker-compose.yml")], capsys)
    assert rc == 0, out
    assert "[shareable] held by writer" in out and "reader @ " in out and "ipc service:writer" in out
    assert not re.search(r":\d+:\d+ [a-z-]+ ", out)
    assert "no finding" in err


# ---------------------------------------------------------------- bad input: located, exit 2, nothing else

BAD_EXPECTED = {
    "anchor-bomb.yml": (2, 1, "anchor bomb"),
    "bad-interpolation.yml": (3, 12, "invalid interpolation format"),
    "bad-size.yml": (4, 15, "expected a size"),
    "duplicate-key.yml": (5, 5, "duplicate key 'ipc'"),
    "extends-cycle.yml": (4, 14, "circular extends"),
    "ipc-unknown-service.yml": (4, 10, "service 'writer' is not defined"),
    "mixed-stream.yaml": (1, 1, "a Kubernetes object in a Compose file's stream"),
    "not-a-stack.yml": (2, 1, "not a Compose file or Kubernetes manifest"),
    "not-yaml.yml": (5, 1, "YAML syntax error"),
    "object-tag.yml": (2, 8, "is not allowed"),
    "pod-without-containers.yaml": (7, 7, "needs at least one container"),
    "required-variable.yml": (3, 12, "required variable IMAGE is missing a value: set IMAGE"),
    "services-list.yml": (2, 3, "expected a mapping of service names"),
    "top-level-list.yml": (1, 1, "expected a mapping at the top level"),
    "unknown-kind.yaml": (6, 7, "unknown kind 'Pood'"),
}


def test_every_bad_file_has_an_expectation() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_EXPECTED)


@pytest.mark.parametrize("name", sorted(BAD_EXPECTED))
def test_bad_input_is_located_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    line, col, text = BAD_EXPECTED[name]
    rc, out, err = run([str(BAD / name)], capsys)
    assert rc == 2
    assert out == ""
    assert err.startswith(f"{BAD / name}:{line}:{col}: "), err
    assert text in err and "Traceback" not in err


def test_a_bad_file_stops_the_check_of_good_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yml", "services:\n  a: {image: app, ipc: host}\n")
    rc, out, err = run([str(good), str(BAD / "unknown-kind.yaml")], capsys)
    assert (rc, out) == (2, "") and "unknown kind" in err


def test_ten_megabytes_binary_and_bad_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yml"
    big.write_text("services:\n" + "".join(f"  s{i}: {{image: app}}\n" for i in range(520_000)))
    assert big.stat().st_size > 10_000_000
    rc, out, err = run([str(big)], capsys)
    assert rc == 2 and out == "" and f"{big}: file is" in err and "at most" in err
    rc, out, err = run(["-"], capsys, stdin=big.read_bytes(), monkeypatch=monkeypatch)
    assert rc == 2 and err.startswith("<stdin>: file is")
    nul = tmp_path / "nul.yml"
    nul.write_bytes(b"services:\n  a: \0\n")
    rc, _, err = run([str(nul)], capsys)
    assert rc == 2 and err.startswith(f"{nul}:2:6: binary file")
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"services:\n  caf\xe9: {image: app}\n")
    rc, _, err = run([str(latin)], capsys)
    assert rc == 2 and err.startswith(f"{latin}:2:6: not valid UTF-8")


# ---------------------------------------------------------------- what Compose does first

def services(*args: str, **kw) -> dict:
    topo = stack.load(list(args), **kw)
    return {c.name: c for c in topo.containers}


def test_interpolation_defaults_required_dollar_and_dotenv(tmp_path: Path) -> None:
    write(tmp_path, ".env", """
        # the project's variables
        SHM=256m
        MODE="shareable"
        EMPTY=
        """)
    f = write(tmp_path, "compose.yaml", """
        services:
          a:
            image: app
            ipc: ${MODE}
            shm_size: ${SHM:-64m}
            mem_limit: ${MEM:-1g}
            command: ["echo", "$$HOME", "${EMPTY:-fallback}", "${EMPTY-kept}", "${SHM:+set}", "${NOPE:-${SHM}}"]
        """)
    s = services(str(f), environ={"MEM": "2g"})
    a = s["a"]
    assert a.ipc.value == "shareable"
    assert a.shm_size.value == 256 << 20
    assert a.memory.value == 2 << 30  # the environment wins over .env and the default
    assert a.refs == ["echo", "$HOME", "fallback", "", "set", "256m"]
    s = services(str(f), environ={"SHM": "1g"})
    assert s["a"].shm_size.value == 1 << 30


def test_unset_variable_becomes_blank_with_a_note(tmp_path: Path) -> None:
    f = write(tmp_path, "c.yml", "services:\n  a: {image: app, user: \"${APP_UID}\"}\n")
    topo = stack.load([str(f)], environ={})
    assert topo.containers[0].user.value == ""
    assert any("APP_UID is not set" in n for n in topo.notes)


def test_extends_same_file_and_other_file(tmp_path: Path) -> None:
    write(tmp_path, "common/base.yml", """
        services:
          shm-base:
            image: app
            shm_size: 1g
            mem_limit: 2g
            environment: {A: "1", B: "1"}
        """)
    f = write(tmp_path, "compose.yml", """
        services:
          writer:
            extends: {service: shm-base, file: common/base.yml}
            ipc: shareable
            environment: {B: "2"}
          reader:
            extends: writer
            ipc: "service:writer"
            mem_limit: 256m
        """)
    s = services(str(f), environ={})
    assert s["writer"].shm_size.value == 1 << 30 and s["writer"].memory.value == 2 << 30
    assert sorted(s["writer"].refs) == ["1", "2"]
    assert s["reader"].ipc.value == "service:writer" and s["reader"].memory.value == 256 << 20
    assert s["reader"].shm_size is not None  # inherited, and ignored on a joiner:
    findings = lint.run(stack.load([str(f)], environ={}))
    assert [x.rule for x in findings] == ["shm-size-on-joiner"]
    assert findings[0].file.endswith("base.yml") and findings[0].line == 4


def test_several_files_merge_like_compose_f(tmp_path: Path) -> None:
    a = write(tmp_path, "compose.yml", """
        services:
          writer:
            image: app
            command: [w, --size, 1m]
            volumes: ["data:/data", "./x:/x"]
            environment: [A=1, B=1]
          reader:
            image: app
        volumes: {data: {}}
        """)
    b = write(tmp_path, "compose.prod.yml", """
        services:
          writer:
            ipc: shareable
            command: [w2]
            volumes: ["other:/data"]
            environment: {B: "2"}
          reader:
            ipc: service:writer
            user: "1000"
        """)
    s = services(files=[str(a), str(b)], environ={})
    w = s["writer"]
    assert w.ipc.value == "shareable"
    assert w.refs[:1] == ["w2"] and sorted(w.refs[1:]) == ["1", "2"]
    assert sorted((m.target.value, m.source) for m in w.mounts) == [("/data", "other"), ("/x", "./x")]
    assert s["reader"].ipc.value == "service:writer" and s["reader"].uid == 1000
    assert w.mounts[0].loc.file == str(b)  # the merged value keeps the file it came from


def test_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write(tmp_path, "c.yml", """
        services:
          app: {image: app}
          debug: {image: app, ipc: host, profiles: [debug]}
        """)
    assert sorted(services(str(f), environ={})) == ["app"]
    assert sorted(services(str(f), environ={}, profiles=["debug"])) == ["app", "debug"]
    assert sorted(services(str(f), environ={"COMPOSE_PROFILES": "x,debug"})) == ["app", "debug"]


def test_helm_style_stream_skips_other_kinds(tmp_path: Path) -> None:
    f = write(tmp_path, "out.yaml", """
        ---
        # Source: chart/templates/svc.yaml
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        ---
        apiVersion: cert-manager.io/v1
        kind: Certificate
        metadata: {name: tls}
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: batch/v1
          kind: Job
          metadata: {name: j}
          spec:
            template:
              spec:
                containers: [{name: a, image: app}]
        ---
        """)
    topo = stack.load([str(f)])
    assert [c.group for c in topo.containers] == ["Job/j"]
    assert [what for _, what in topo.skipped] == ["Service/web", "Certificate/tls (custom resource, not inspected)"]


def test_docs_rules_are_generated_from_the_registry() -> None:
    from labctl.lint import reports as output

    doc = (ROOT / "docs" / "check.md").read_text()
    assert output.markdown_rules() in doc, "regenerate the rules part of docs/check.md with output.markdown_rules()"


def test_a_file_both_named_and_extended_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path, "base.yml", "services:\n  b: {image: app, ipc: host}\n")
    top = write(tmp_path, "top.yml", "services:\n  t: {extends: {service: b, file: base.yml}}\n")
    rc, out, _ = run([str(top), str(base)], capsys)
    assert rc == 1
    assert [ln.split(" ")[0] for ln in out.splitlines()] == [f"{base}:2:24", f"{base}:2:24"]


K8S = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      hostIPC: false
      securityContext: {runAsUser: 1000, sysctls: [{name: kernel.shmmax, value: "1"}]}
      containers:
      - name: a
        image: app
        args: [posix-writer, --size, 96m]
        env: [{name: X, value: /dev/shm/x}]
        resources: {limits: {memory: 64Mi}}
        volumeMounts: [{name: dshm, mountPath: /dev/shm, subPath: x}]
      volumes:
      - name: dshm
        emptyDir: {medium: Memory, sizeLimit: 1Gi}
"""


def test_mutated_inputs_never_crash(tmp_path: Path) -> None:
    """Lines dropped, re-indented or given other types: a result or a located error, never a traceback."""
    import random

    from labctl.errors import LabctlError

    rnd = random.Random(7)
    sources = [(ROOT / "docker-compose.yml").read_text(), K8S]
    values = [" null", " []", " {}", " 7", ' "x"', " [1, {}]", " true", " [[]]", " {a: [1]}"]
    for _ in range(400):
        lines = rnd.choice(sources).splitlines()
        for _ in range(rnd.randrange(1, 4)):
            j = rnd.randrange(len(lines))
            op = rnd.randrange(4)
            if op == 0:
                del lines[j]
            elif op == 1:
                lines[j] = lines[j].replace(":", "", 1)
            elif op == 2:
                lines[j] = "  " + lines[j]
            else:
                lines[j] = lines[j].split(":")[0] + ":" + rnd.choice(values)
        f = tmp_path / "m.yml"
        f.write_text("\n".join(lines))
        try:
            lint.run(stack.load([str(f)], environ={}))
        except LabctlError as e:
            assert re.match(rf"{re.escape(str(f))}(:\d+:\d+)?: ", str(e)), str(e)
