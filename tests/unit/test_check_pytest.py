"""``pytest --labctl-check PATH``: a CI job lints its stacks as test items (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HOST = "services:\n  a: {image: app, ipc: host}\n"
CLEAN = "services:\n  w: {image: app, ipc: shareable}\n  r: {image: app, ipc: 'service:w'}\n"


def test_findings_fail_the_item_clean_files_pass(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", bad=HOST, good=CLEAN)
    res = pytester.runpytest("--labctl-check", "bad.yml", "--labctl-check", "good.yml", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["bad.yml:2:24 host-ipc *"])


def test_fail_on_and_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", bad=HOST)
    pytester.makeini("[pytest]\nlabctl_check = bad.yml\n")
    pytester.runpytest("--labctl-check-fail-on", "error").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(failed=1)


def test_unreadable_file_fails_located(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", broken="services: [a\n")
    res = pytester.runpytest("--labctl-check", "broken.yml")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["broken.yml:*: YAML syntax error*"])
    assert "Traceback" not in res.stdout.str()


def test_inert_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", bad=HOST)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
