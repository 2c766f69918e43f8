"""``engines:`` in the format: where the engines really differ, a scenario or a check says so."""

from __future__ import annotations

import pytest

from labctl.errors import ScenarioErrors
from labctl.scenario import load_text
from labctl.scenario.schema import json_schema

BASE = """\
version: 1
name: e
description: d
{top}containers:
  a: {{workload: hold}}
  b: {{workload: hold{ipc}}}
checks:
  - exit: {{container: a, code: 0}}
{check}"""


def load(top: str = "", check: str = "", ipc: str = ""):
    return load_text(BASE.format(top=top, check=check, ipc=ipc), "x.yaml")


def test_scenario_and_check_restrictions_are_kept() -> None:
    s = load(top="engines: [podman]\n", check="    engines: [podman]\n")
    assert s.engines == ("podman",) and s.checks[0].engines == ("podman",)
    assert s.runs_on("podman") and not s.runs_on("docker")
    assert load().runs_on("docker") and load().checks[0].engines == ()


def test_no_ipc_key_means_the_engine_default() -> None:
    s = load(ipc=", ipc: private")
    assert not s.container("a").ipc_set and s.container("b").ipc_set and s.container("b").ipc == "private"


@pytest.mark.parametrize("top, check, message", [
    ("engines: [rkt]\n", "", "x.yaml:4:11: engines[0]:"),
    ("engines: []\n", "", "x.yaml:4:10: engines:"),
    ("engines: [docker]\n", "    engines: [podman]\n", "checks[0].engines: the scenario runs only on docker"),
])
def test_bad_engines_are_located_errors(top: str, check: str, message: str) -> None:
    with pytest.raises(ScenarioErrors) as e:
        load(top=top, check=check)
    assert message in str(e.value)


def test_engines_in_the_schema() -> None:
    schema = json_schema()
    assert schema["properties"]["engines"]["items"]["enum"] == ["docker", "podman"]
