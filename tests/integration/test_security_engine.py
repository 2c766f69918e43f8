"""Untrusted input against the real engine: what the engine-free cases of
tests/unit/test_security.py show with ``DOCKER_HOST`` pointing nowhere, shown here on the
engine, where the leak guard finds nothing new after each test."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_security import EXPECTED, INVALID, NOWHERE, OPT_INS, labctl, opt_in_folder  # noqa: F401 - the fixture


def test_discovered_files_needing_an_opt_in_are_skipped_with_the_reason(opt_in_folder: Path, shmlab_image: str) -> None:
    res = labctl("run", str(opt_in_folder), "--format", "json")
    assert res.code == 0, res.stderr
    by_name = {s["name"]: s for s in json.loads(res.stdout)["scenarios"]}
    assert set(by_name) == set(OPT_INS)
    for case, (_, _, flag) in OPT_INS.items():
        assert by_name[case]["status"] == "skipped" and flag in by_name[case]["message"], by_name[case]
    listed = labctl("validate", str(opt_in_folder), env=NOWHERE)
    assert listed.code == 0 and listed.stdout.count("runs only with --allow-") == len(OPT_INS), listed.stdout


def test_run_on_the_whole_corpus_starts_nothing(shmlab_image: str) -> None:
    names = sorted(EXPECTED)
    nowhere = labctl("run", *names, cwd=INVALID, env=NOWHERE)
    assert nowhere.code == 2 and "Traceback" not in nowhere.stderr  # 2, not 3: engine never asked
    for name in names:
        assert EXPECTED[name] in nowhere.stderr.splitlines(), name
    # The same against the real engine; the leak guard checks that nothing appeared.
    real = labctl("run", *names, cwd=INVALID)
    assert real.code == 2 and real.stderr == nowhere.stderr
