"""docs/ci.md stays honest: every ``labctl``/``docker`` command of its recipes runs, as written, against
the local engine (``LABCTL_TAG`` narrows the library to a quick subset; the dind recipe's
``DOCKER_HOST`` is not applied: there is no ``docker`` service host here). That the recipes
parse into the shapes GitHub Actions and GitLab CI read is a unit test (tests/unit/test_docs.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ci_recipes as recipes
from tests.integration.test_image import drop_c_layouts, labctl_image  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
SUBSET_TAG = "security"  # two quick scenarios

pytestmark = pytest.mark.slow


def shell_lines() -> list[tuple[str, str]]:
    """(recipe, command) for every run:/script: line of the YAML recipes."""
    lines = []
    for name, (lang, body) in recipes().items():
        if lang != "yaml":
            continue
        doc = yaml.safe_load(body)
        if "jobs" in doc:  # GitHub Actions
            lines += [(name, s["run"]) for job in doc["jobs"].values() for s in job["steps"] if "run" in s]
        else:  # GitLab CI
            lines += [(name, line) for job in doc.values() for line in job["script"]]
    return lines




@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project folder as a CI job sees it: the scenarios as `labctl init` gives them (the
    C headers their layouts name copied beside them, under include/), nothing else."""
    done = subprocess.run([sys.executable, "-m", "labctl", "init", str(tmp_path / "scenarios")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    drop_c_layouts(tmp_path / "scenarios")  # the image refuses them (docs/ci.md); pip labctl does not
    return tmp_path


def run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCTL_")}
    env.update(LABCTL_TAG=SUBSET_TAG, CI_JOB_ID=f"{os.getpid()}", CI_PROJECT_DIR=str(cwd),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.pop("DOCKER_HOST", None)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, check=False)


def _runnable(command: str) -> bool:
    return command.startswith(("labctl ", "docker ")) or command.startswith("exit ")


@pytest.mark.parametrize("recipe", ["github", "gitlab-dind"])
def test_recipe_commands_run_as_written(recipe: str, workdir: Path, shmlab_image: str, labctl_image: str) -> None:
    commands = [c for name, c in shell_lines() if name == recipe and _runnable(c)]
    assert commands, f"no labctl/docker command in the {recipe} recipe"
    for command in commands:
        shutil.rmtree(workdir / "reports", ignore_errors=True)
        done = run_shell(command, workdir)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "<testsuite" in (workdir / "reports" / "junit.xml").read_text(), command


def test_gitlab_socket_recipe_runs_as_one_script(workdir: Path, labctl_image: str) -> None:
    script = [c for name, c in shell_lines() if name == "gitlab-socket"]
    done = run_shell("\n".join(script), workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<testsuite" in (workdir / "reports" / "junit.xml").read_text()


def test_exit_code_snippet_branches(workdir: Path, shmlab_image: str) -> None:
    snippet = recipes()["exit-codes"][1]
    done = run_shell(snippet, workdir)
    assert done.returncode == 0 and "lab passed" in done.stdout, done.stdout + done.stderr
    (workdir / "scenarios" / "broken.yaml").write_text("version: 1\nname: broken\n")
    done = run_shell(snippet, workdir)
    assert done.returncode == 2 and "nothing ran" in done.stdout, done.stdout + done.stderr
