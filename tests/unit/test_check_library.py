"""The library is the ground truth of ``labctl check``.

For every rule, its scenario rendered by ``labctl compose S`` and ``labctl export k8s S``
(the renderings named in the rule's ``proof``) piped into ``labctl check -`` reports the
rule; its fixed twin, rendered the same way, does not. Every scenario tagged ``pitfall``
is some rule's scenario or is listed in NOT_IN_A_FILE with the reason no file shows it.

Scenarios a rule names that the library does not have yet are listed, exactly, in
PENDING_SCENARIOS: when one lands, this test fails until it is taken off the list (and the
rule's ``proof`` then says which renderings show it).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import cli, lint
from labctl.images.library import library_files
from labctl.scenario import load_all

ROOT = Path(__file__).resolve().parents[2]

# Scenarios named by a rule, not yet in the library.
PENDING_SCENARIOS = {
    "mmap-bind-file": "single-file-bind",
}

# Pitfalls that another rule's scenario stands for, reported by that rule in both renderings
# (their twins fix the program, not the file, so they are not asserted clean).
ALSO_REPORTED = {
    "posix-umask-0644": "uid-mismatch",  # root (umask 022: objects 0644) and uid 1000 share a namespace
}

# Pitfalls whose cause is in the program or the timing, not in the Compose file or pod spec.
NOT_IN_A_FILE = {
    "count-race-lost-updates": "non-atomic count++ in the program",
    "ftok-image-key": "the ftok key file's inode comes from the image, which a file does not show",
    "image-layer-not-shared": "which path is an image layer depends on the image, not the file",
    "mixed-width-long": "the struct layout of the programs (a 32-bit and a 64-bit build)",
    "mmap-sigbus-before-truncate": "the reader maps before the writer's ftruncate: a race in the programs",
    "sysv-create-trap": "IPC_CREAT in the reader's code",
    "pod-start-race": "the programs' start order inside a pod (a reader that does not wait)",
    "devshm-noexec-exec-map": "PROT_EXEC in the program (the engines' /dev/shm is noexec by default)",
    "seccomp-denies-shmget": "the seccomp profile's content, a JSON file labctl check does not read",
    "posix-unlink-at-exit": "the consumer's shm_unlink at exit (a resource tracker) in the program",
    "posix-excl-name-collision": "the fixed POSIX name two programs choose, in their code",
}


def render(args: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """stdout of ``labctl ARGS`` in-process; None when it exits 2 (not expressible)."""
    rc = cli.main(args)
    out = capsys.readouterr().out
    if rc == 2:
        return None
    assert rc == 0, (args, rc)
    return out


def check_stdin(text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Rule ids ``labctl check - --format json`` reports for ``text`` on standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    rc = cli.main(["check", "-", "--format", "json", "--fail-on", "note"])
    captured = capsys.readouterr()
    assert rc in (0, 1), captured.err
    doc = json.loads(captured.out)
    assert (rc == 1) == bool(doc["findings"])
    return {f["rule"] for f in doc["findings"]}


RENDER = {"compose": ["compose"], "k8s": ["export", "k8s"]}


def test_rule_scenarios_exist_or_are_pending_exactly() -> None:
    have = set(library_files())
    named = {}
    for r in lint.table().values():
        named[r.scenario] = r.id
        if r.twin:
            named[r.twin] = r.id
    missing = {s: rid for s, rid in named.items() if s not in have}
    assert missing == PENDING_SCENARIOS


def test_every_pitfall_has_a_rule_or_a_reason() -> None:
    scenarios = load_all([str(ROOT / "scenarios")])
    pitfalls = {Path(s.file).stem for s in scenarios if "pitfall" in s.tags}
    covered = {r.scenario for r in lint.table().values()} | set(ALSO_REPORTED)
    assert sorted(pitfalls - covered - set(NOT_IN_A_FILE)) == []
    assert sorted(set(NOT_IN_A_FILE) - pitfalls) == []  # a listed one that is no pitfall any more
    assert sorted(set(NOT_IN_A_FILE) & covered) == []


def test_every_rule_is_proven_or_says_why_not() -> None:
    for r in lint.table().values():
        assert r.proof <= set(r.applies_to), r.id
        if r.proof != set(r.applies_to):
            assert r.proof_note, f"{r.id}: proof {sorted(r.proof)} of {r.applies_to} without a proof_note"
        assert len(lint.table()) >= 12


CASES = [(r.id, fmt) for r in lint.table().values() for fmt in sorted(r.proof)]


@pytest.mark.parametrize(("rule_id", "fmt"), CASES, ids=[f"{r}-{f}" for r, f in CASES])
def test_scenario_reports_its_rule_and_twin_does_not(rule_id: str, fmt: str, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    r = lint.table()[rule_id]
    files = library_files()
    text = render([*RENDER[fmt], str(files[r.scenario])], capsys)
    assert text is not None, f"{r.scenario}: `labctl {' '.join(RENDER[fmt])}` refuses it; fix the rule's proof"
    assert rule_id in check_stdin(text, capsys, monkeypatch)
    if r.twin and r.twin_in_file:
        twin = render([*RENDER[fmt], str(files[r.twin])], capsys)
        assert twin is not None
        assert rule_id not in check_stdin(twin, capsys, monkeypatch)


@pytest.mark.parametrize("scenario", sorted(ALSO_REPORTED))
def test_pitfalls_another_rule_stands_for(scenario: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in ("compose", "k8s"):
        text = render([*RENDER[fmt], str(library_files()[scenario])], capsys)
        assert text is not None and ALSO_REPORTED[scenario] in check_stdin(text, capsys, monkeypatch)


def test_a_real_pipe() -> None:
    """``labctl compose S | labctl check -`` as a shell runs it."""
    scenario = ROOT / "scenarios" / "tmpfs-not-shared.yaml"
    cmd = f"{sys.executable} -m labctl compose {scenario} | {sys.executable} -m labctl check -"
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    assert lines and all(ln.startswith("<stdin>:") and " tmpfs-not-shared " in ln for ln in lines)
