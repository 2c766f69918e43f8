"""The scenario library as a whole: its make-up, the pitfall filter, and that no pitfall
scenario can pass by accident.

The session's Docker library run (conftest's ``docker_library_run``) runs every scenario;
this file adds what that does not judge: ``--tag pitfall`` names exactly the pitfalls, each
pitfall has a check that asserts the failure itself (it would fail if the pitfall stopped
happening), passed in that run, plus a twin scenario that shows the fix; each lifecycle
scenario passed through its witness and its cleanup check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import scenario as scen
from labctl.report.handout import parse_description, twins
from labctl.scenario.kinds.events import EventsCheck
from labctl.scenario.kinds.exit import ExitCheck
from labctl.scenario.kinds.refused import RefusedCheck
from labctl.scenario.kinds.segment import SegmentCheck
from labctl.scenario.model import CheckSpec, Scenario
from tests.helpers import what_failed

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"sysv", "posix", "mmap", "isolation", "cleanup", "pitfall", "security", "sync", "sharing", "host",
        "layout", "platform", "lifecycle", "engines", "pod", "runtime", "gvisor", "seccomp", "rootless"}

# Each pitfall scenario: the check that witnesses the failure, and the scenario that shows
# the fix. A new pitfall must be added here, which forces someone to name both.
PITFALLS = {
    "sysv-create-trap": ("reader attaches a segment it created itself", "sysv-shareable"),
    "ftok-image-key": ("the reader's key finds nothing (ENOENT)", "ftok-shared-file"),
    "mmap-sigbus-before-truncate": ("the reader is killed by SIGBUS", "mmap-after-truncate"),
    "tmpfs-not-shared": ("the reader finds no such file (ENOENT)", "tmpfs-volume-shared"),
    "image-layer-not-shared": ("the reader never sees the writer's ip", "mmap-volume"),
    "posix-beyond-shm-size": ("the filler is killed by SIGBUS when /dev/shm runs out", "posix-shm-size-raised"),
    "sysv-uid-mismatch": ("the stranger's shmat fails with EACCES", "sysv-uid-shared-group"),
    "count-race-lost-updates": ("updates were lost (final count below 2 x 100,000)", "count-race-atomic"),
    "shmmax-einval": ("shmget fails with EINVAL", "shmmax-raised"),
    "mixed-width-long": ("no read has the right total", "mixed-width-fixed"),
    "pod-start-race": ("the reader's shmget finds no segment", "pod-start-wait"),
    "gvisor-sysv-not-shared": ("the reader's shmget fails with ENOENT", "gvisor-mmap-bind-dir-shared"),
    "seccomp-denies-shmget": ("the writer's shmget fails with EPERM", "seccomp-allows-shmget"),
    "devshm-noexec-exec-map": ("the writer's mmap fails with EPERM", "devshm-exec-map"),
    "posix-umask-0644": ("the peer's shm_open fails with EACCES", "posix-umask-fixed"),
    "posix-unlink-at-exit": ("the late reader's shm_open fails with ENOENT", "posix-attach-keeps-name"),
    "posix-excl-name-collision": ("the second program's shm_open fails with EEXIST", "posix-distinct-names"),
    "shm-size-joiner-ignored": ("posix_fallocate of 32 MB fails with ENOSPC although the joiner asked for 64 MB",
                                "pod-shared-devshm"),
}

# Each lifecycle fault: the check (in checks: or a check step) that fails if the
# fault stopped happening, and its fixed twin (None: a lesson with no twin).
LIFECYCLE = {
    "donor-restart-splits-sharing": ("donor and joiner are now in different IPC namespaces", "donor-restart-rejoin"),
    "devshm-crashloop-fills": ("a later run finds /dev/shm full (ENOSPC)", "devshm-crashloop-cleans"),
    "sigkill-leaks-private-segments": ("three orphaned segments stay in the namespace", "private-segments-rmid-forced"),
    "shm-oom-killed-writer": ("the writer is OOM-killed", "shm-writer-enough-memory"),
    "shm-reader-not-charged": ("the reader is not charged for the pages", None),
    "pause-freezes-writer": ("the count stands still while the writer is paused", None),
    "sigterm-cleans-sigkill-leaks": ("exactly rude's three segments remain", None),
}

# Items of the library issue the scenarios must cover (a scenario name for each).
REQUIRED = [
    "sysv-shareable", "sysv-both-private", "join-private-donor", "ipc-none", "sysv-host",
    "posix-shareable", "sysv-msg-sem-joined", "mmap-volume", "mmap-bind-dir", "ns-identity",
    "sysv-create-trap", "ftok-image-key", "ftok-shared-file", "mmap-sigbus-before-truncate",
    "mmap-after-truncate", "tmpfs-not-shared", "image-layer-not-shared", "posix-beyond-shm-size", "posix-shm-size-raised",
    "sysv-uid-mismatch", "sysv-uid-shared-group", "count-race-lost-updates", "count-race-atomic",
    "count-race-semaphore", "shmmax-einval", "rmid-while-attached", "orphan-segment", "shm-rmid-forced",
]


def labctl(*args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def library() -> dict[str, Scenario]:
    return {s.name: s for s in scen.load_all([str(ROOT / "scenarios")])}


def asserts_a_failure(check: CheckSpec) -> bool:
    """True when the check can only pass if something went wrong in the workload: an
    errno, a fatal signal, a non-zero exit, an engine refusal, a segment the reader
    created itself, a counter below its expected total, or shared data that never arrives."""
    b = check.body
    if isinstance(b, ExitCheck):
        return b.signal is not None or (bool(b.codes) and 0 not in b.codes)
    if isinstance(b, RefusedCheck):
        return True
    if isinstance(b, EventsCheck):
        where = dict(b.where)
        if b.event == "error":
            return b.min >= 1 and "errno" in where
        if b.max == 0 and where:  # the data that sharing would deliver never arrives
            return True
        created = where.get("created")
        return b.event == "attached" and created is not None and created.op == "eq" and created.value is True
    if isinstance(b, SegmentCheck):
        return any(e.op in ("lt", "le") for _, e in b.fields)
    return False


def test_the_library_covers_the_issue(library):
    missing = [n for n in REQUIRED if n not in library]
    assert not missing
    assert len(library) >= 20


def _all_checks(s: Scenario) -> dict[str, CheckSpec]:
    return {c.name: c for c in s.checks} | {st.check.name: st.check for st in s.steps if st.check is not None}


def test_lifecycle_faults_have_a_witness_and_a_twin(library):
    tagged = {n for n, s in library.items() if "lifecycle" in s.tags}
    assert len(tagged) >= 8
    for name, (witness, twin) in LIFECYCLE.items():
        assert name in tagged, name
        assert witness in _all_checks(library[name]), (name, witness)
        if twin is not None:
            assert twin in tagged and twin in twins(library[name], list(library.values())), (name, twin)


def test_tags_and_descriptions(library):
    for s in library.values():
        assert set(s.tags) <= TAGS, (s.name, s.tags)
        assert s.tags, s.name
        lesson = parse_description(s.description)
        assert 20 <= len(lesson.summary) <= 160, (s.name, lesson.summary)
        assert len(lesson.body) >= 100, f"{s.name}: say what is set up, what happens and why"
        assert lesson.fix, f"{s.name}: say how to fix it (a Fix: or Lesson: line)"


def test_every_pitfall_has_a_witness_check_and_a_twin(library):
    pitfalls = {n for n, s in library.items() if "pitfall" in s.tags}
    assert pitfalls == set(PITFALLS)
    for name, (witness, twin) in PITFALLS.items():
        s = library[name]
        check = next((c for c in s.checks if c.name == witness), None)
        assert check is not None, f"{name}: no check named {witness!r}"
        assert asserts_a_failure(check), f"{name}: {witness!r} would also pass without the pitfall"
        assert check.consistently is None  # an eventually-check on a failure that must be seen
        assert twin in library and "pitfall" not in library[twin].tags, (name, twin)
        assert not any(asserts_a_failure(c) for c in library[twin].checks
                       if c.kind in ("exit", "refused")), f"{twin} is a twin: it expects success"


def test_twins_named_in_descriptions_exist(library):
    scenarios = list(library.values())
    for name, (_witness, twin) in PITFALLS.items():
        named = twins(library[name], scenarios)
        if named:  # descriptions written with the library point the learner at the fix
            assert twin in named, (name, named)


def test_negative_absence_checks_hold_over_time(library):
    # "no such segment" right after start proves nothing unless it is held for a while
    # or follows an exit/error check that fixed the moment.
    for s in library.values():
        for i, c in enumerate(s.checks):
            if isinstance(c.body, SegmentCheck) and not c.body.present and c.consistently is None:
                earlier = s.checks[:i]
                assert any(e.kind in ("exit", "events") for e in earlier), (s.name, c.name)


def test_list_tag_pitfall_names_exactly_the_pitfalls(library):
    proc = labctl("list", "--tag", "pitfall", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert {e["name"] for e in json.loads(proc.stdout)} == set(PITFALLS)


def _library_report(docker_library_run) -> dict[str, dict]:  # noqa: ANN001 - conftest's LibraryRun
    """The session's Docker library run (conftest's ``docker_library_run``), scenario name -> its
    entry in the JSON report; the run itself must have passed."""
    proc = docker_library_run.proc
    assert proc.returncode == 0, what_failed(proc)
    return {s["name"]: s for s in json.loads(proc.stdout)["scenarios"]}


def test_every_pitfall_passes_through_its_witness(docker_library_run):
    """Each pitfall scenario passed in the library run, its witness check among the passed
    (``--tag pitfall`` selects exactly them: test_list_tag_pitfall_names_exactly_the_pitfalls,
    and test_run.py's test_filters_by_tag_and_substring for ``run``)."""
    report = _library_report(docker_library_run)
    for name, (witness, _twin) in PITFALLS.items():
        s = report[name]
        assert s["status"] == "passed", (name, s.get("message"))
        statuses = {c["name"]: c["status"] for c in s["checks"]}
        assert statuses.get(witness) == "passed", (name, statuses)


def test_every_lifecycle_scenario_passes_through_its_witness_and_leaves_nothing(docker_library_run, library):
    report = _library_report(docker_library_run)
    names = {n for n, s in library.items() if "lifecycle" in s.tags}
    assert len(names) >= 8
    for name in sorted(names):
        s = report[name]
        assert s["status"] == "passed", (name, s.get("message"))
        if name in LIFECYCLE:
            witness = LIFECYCLE[name][0]
            statuses = {c["name"]: c["status"] for c in s["checks"]} | {
                st["name"]: st["status"] for st in s.get("steps", [])}
            assert statuses.get(witness) == "passed", (name, statuses)
        assert all(st["status"] == "passed" for st in s.get("steps", [])), name
        assert any(c["name"] == "cleanup" and c["status"] == "passed" for c in s["checks"]), name
