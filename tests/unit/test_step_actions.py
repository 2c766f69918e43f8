"""The step actions table: every module in labctl/scenario/actions is one whole entry of ACTIONS,
and everything that knows the actions (schema, validator, compose and k8s exports, handout, docs)
reads that table."""

from __future__ import annotations

import re
from pathlib import Path

from labctl.export.compose import step_command
from labctl.report.handout import step_actions_markdown
from labctl.scenario.actions.step_action import StepAction
from labctl.scenario.actions.action_registry import ACTIONS
from labctl.scenario.model import StepSpec
from labctl.scenario.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]
ACTIONS_DIR = ROOT / "labctl" / "scenario" / "actions"


def test_every_action_module_is_one_entry_of_the_table() -> None:
    modules = sorted(p.stem for p in ACTIONS_DIR.glob("*.py") if p.stem not in ("__init__", "step_action", "action_registry"))
    assert sorted(ACTIONS) == modules
    for name, action in ACTIONS.items():
        assert isinstance(action, StepAction) and action.name == name
        assert action.description and callable(action.act) and callable(action.read)
        assert "container" in action.spec.fields, name
        assert action.k8s is None or action.k8s.strip(), name


def test_every_action_has_a_compose_command_naming_its_container() -> None:
    for name, action in ACTIONS.items():
        step = StepSpec(name, f"{name} c", container="svc-x", until="exited", count=1)
        assert "svc-x" in action.compose(step) and action.compose(step) == step_command(step), name


def test_the_compose_commands_are_the_ones_docker_compose_takes() -> None:
    def cmd(**kw: object) -> str:
        return step_command(StepSpec(name="s", container="w", **kw))  # type: ignore[arg-type]

    assert cmd(action="restart", grace=2.0) == "docker compose restart -t 2 w"
    assert cmd(action="stop", grace=10.0) == "docker compose stop -t 10 w"
    assert cmd(action="kill", signal="SIGTERM") == "docker compose kill -s SIGTERM w"
    assert [cmd(action=a) for a in ("start", "pause", "unpause")] == [
        "docker compose start w", "docker compose pause w", "docker compose unpause w"]
    assert cmd(action="wait", until="restarts", count=2, timeout=5.0) == \
        "wait until w was restarted 2 time(s) (at most 5s)"
    assert cmd(action="wait", until="ready", timeout=5.0) == "wait until w printed the event 'ready' (at most 5s)"


def test_the_schema_and_the_handout_list_every_action_in_table_order() -> None:
    text = str(json_schema())
    for name, action in ACTIONS.items():
        assert f"'{name}'" in text and action.description in text
    rows = [line.split("`")[1] for line in step_actions_markdown() if line.startswith("| `")]
    assert rows == list(ACTIONS)


def test_internals_lists_every_action_module_in_registry_order() -> None:
    text = (ROOT / "docs" / "internals.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("restart.py"))
    assert re.findall(r"(\w+)\.py", line) == list(ACTIONS)


def test_go_sends_sigusr1_and_exports_start_the_workload_at_once() -> None:
    from labctl.export.compose import render_compose
    from labctl.export.k8s.render import render
    from labctl.scenario.actions import go
    from labctl.scenario import load_file

    sent: list[str] = []

    class _Stage:
        def container(self, step: StepSpec) -> object:
            return type("C", (), {"kill": lambda self, sig: sent.append(sig)})()

    assert go.ACTION.act(_Stage(), StepSpec("go", "go w", container="w"), 0.0) == "sent SIGUSR1"  # type: ignore[arg-type]
    assert sent == ["SIGUSR1"]
    s = load_file(str(ROOT / "scenarios" / "shm-oom-killed-writer.yaml"))
    assert "--await-go" in s.containers[0].args and any(st.action == "go" for st in s.steps)
    # nobody gives the go in an export: the workload must not wait for it there
    assert "--await-go" not in render_compose(s) and "--await-go" not in render(s, image="labctl/shmlab:t")
