"""The JSON Schema (draft 2020-12) of a scenario file, derived from ``format_table.SCENARIO``."""

from __future__ import annotations

import json
from typing import Any

from labctl.scenario.format_table import SCENARIO

SCHEMA_ID = "https://labctl.invalid/scenario.schema.json"


def json_schema() -> dict[str, Any]:
    """The schema as a dict; ``labctl schema`` prints it, docs/scenario.schema.json stores it."""
    body = SCENARIO.schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "labctl scenario",
        **body,
    }


def json_schema_text() -> str:
    """The schema as the exact text committed in docs/scenario.schema.json."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
