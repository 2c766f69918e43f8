"""The kinds table is the one list of check kinds: everything that names kinds follows it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labctl.report.handout import check_kinds_markdown
from labctl.scenario import load_all
from labctl.scenario.format_table import CHECK
from labctl.scenario.kinds.registry import KINDS, kind_of
from labctl.scenario.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_is_declared_whole_and_reaches_table_schema_and_handout(name: str) -> None:
    kind = KINDS[name]
    assert kind.name == name
    assert dataclasses.is_dataclass(kind.model) and kind.model.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert kind.description and "\n" not in kind.description
    assert callable(kind.build) and callable(kind.judge)
    assert name in CHECK.fields and name in CHECK.one_of
    entry = json_schema()["properties"]["checks"]["items"]
    assert entry["properties"][name]["description"] == kind.description
    assert f"| `{name}` | {kind.description} |" in check_kinds_markdown()


def test_models_are_distinct_so_a_body_names_its_kind() -> None:
    models = [k.model for k in KINDS.values()]
    assert len(set(models)) == len(models)


def test_library_checks_are_built_by_the_kind_they_name() -> None:
    for s in load_all([str(ROOT / "scenarios")]):
        for c in s.checks:
            assert kind_of(c.body).name == c.kind
