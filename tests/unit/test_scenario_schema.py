"""The committed JSON Schema is exactly what the format table generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.scenario.format_table import CHECK, CONTAINER, SCENARIO
from labctl.scenario.schema import json_schema, json_schema_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "scenario.schema.json"


def test_committed_schema_is_current() -> None:
    """Regenerate with: python -c 'from labctl.scenario.schema import json_schema_text as t;
    open("docs/scenario.schema.json", "w").write(t())'"""
    assert json.loads(COMMITTED.read_text()) == json_schema()
    assert COMMITTED.read_text() == json_schema_text()


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_schema_and_validator_share_the_keys() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == set(SCENARIO.fields)
    assert schema["additionalProperties"] is False
    container = schema["properties"]["containers"]["additionalProperties"]
    assert set(container["properties"]) == set(CONTAINER.fields)
    check = schema["properties"]["checks"]["items"]
    assert set(check["properties"]) == set(CHECK.fields)
    assert [o["required"] for o in check["oneOf"]] == [[k] for k in CHECK.one_of]
    assert all("description" in v for v in container["properties"].values())


@pytest.mark.parametrize("doc", [
    {"version": 1, "name": "x", "description": "d", "containers": {"a": {"workload": "hold"}},
     "checks": [{"exit": {"container": "a"}, "output": {"container": "a", "matches": "x"}}]},
    {"version": 1, "name": "x", "description": "d", "containers": {"a": {"workload": "hold", "image": "i"}},
     "checks": [{"exit": {"container": "a"}}]},
    {"version": 1, "name": "x", "description": "d", "containers": {"a": {"workload": "hold", "ipc": "sharable"}},
     "checks": [{"exit": {"container": "a"}}]},
    {"version": 1, "name": "x", "description": "d", "containers": {"a": {"workload": "hold"}}, "checks": []},
    {"version": 1, "name": "x", "description": "d", "containers": {"a": {"workload": "hold"}},
     "checks": [{"exit": {"container": "a"}}], "extra": 1},
])
def test_schema_rejects_what_the_validator_rejects(doc: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert not jsonschema.Draft202012Validator(json_schema()).is_valid(doc)
