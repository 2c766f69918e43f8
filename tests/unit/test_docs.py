"""The docs stay true to the code: README size, links, the internals map, no references
outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from labctl import errors
from labctl.scenario.kinds.registry import KINDS
from tests.helpers import CI_DOC, ci_recipes as recipes

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
INTERNALS = ROOT / "docs" / "internals.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12 * 1024
# A design file that lives outside the repository, and tracker numbers: both mean nothing to a reader.
OUTSIDE_REFERENCE = re.compile("DESIGN" + r"\.md|issue [0-9]+")


def test_readme_stays_short() -> None:
    assert len(README.read_bytes()) <= README_MAX_BYTES


def test_no_reference_to_files_outside_the_repository_or_to_tracker_numbers() -> None:
    files = [README, *DOCS, *(ROOT / "labctl").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
             *(ROOT / "tests").rglob("*.yaml")]
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in files
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1) if OUTSIDE_REFERENCE.search(line)]
    assert hits == []


def test_relative_links_of_readme_and_docs_resolve() -> None:
    broken = []
    for doc in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_module_paths_named_in_the_docs_exist() -> None:
    missing = []
    for doc in [README, *DOCS]:
        for path in set(re.findall(r"\blabctl/[\w/]+\.py\b", doc.read_text())):
            if not (ROOT / path).is_file():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert missing == []


def _where_table() -> list[tuple[str, list[str]]]:
    text = INTERNALS.read_text()
    section = text[text.index("### Where do I change X"):]
    section = section[:section.index("\n#", 1)]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| where")]
    return [(q.strip(), re.findall(r"`(labctl/[\w/]+\.py)`", files)) for q, files in rows]


def test_internals_answers_the_five_questions_with_at_most_two_files_each() -> None:
    rows = _where_table()
    questions = " ".join(q for q, _ in rows)
    for topic in ("`restarts`", "an engine", "`restart` step", "k8s export", "JSON report"):
        assert topic in questions
    for question, files in rows:
        assert 1 <= len(files) <= 2, question
        for path in files:
            assert (ROOT / path).is_file(), path


def test_internals_lists_every_check_kind_in_registry_order() -> None:
    text = INTERNALS.read_text()
    block = text[text.index("    registry.py   KINDS"):]
    block = block[block.index("\n") + 1:block.index("labctl/checks/evaluate.py")]
    listed = re.findall(r"(?<![/\w])(\w+)\.py", block)
    assert listed == list(KINDS)


# ---- docs/ci.md: the recipes parse into what GitHub Actions and GitLab CI read (running them
# needs the engine: tests/integration/test_ci_recipes.py)


def test_the_ci_recipes_have_the_shapes_their_ci_reads() -> None:
    r = recipes()
    assert {"github", "gitlab-dind", "gitlab-socket", "exit-codes"} <= set(r)
    gh = yaml.safe_load(r["github"][1])
    assert gh["on"] if "on" in gh else gh[True]  # YAML 1.1 reads `on:` as True
    for job in gh["jobs"].values():
        assert job["runs-on"] and any("junit" in str(s.get("with", {})) for s in job["steps"])
    for name in ("gitlab-dind", "gitlab-socket"):
        for job in yaml.safe_load(r[name][1]).values():
            assert job["artifacts"]["when"] == "always"
            assert job["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    dind = next(iter(yaml.safe_load(r["gitlab-dind"][1]).values()))
    assert dind["variables"]["DOCKER_HOST"] == "tcp://docker:2375"


def test_the_ci_exit_code_table_is_labctls() -> None:
    rows = dict(re.findall(r"^\| (\d+(?: / \d+)?) \| ([^|]+)\|", CI_DOC.read_text(), re.M))
    assert set(rows) == {"0", "1", "2", "3", "130 / 143"}
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_ENVIRONMENT) == (0, 1, 2, 3)
    assert (errors.EXIT_INTERRUPTED, errors.EXIT_TERMINATED) == (130, 143)
