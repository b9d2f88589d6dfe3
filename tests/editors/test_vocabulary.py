"""One vocabulary: the JSON Schema, the parser and the editors' docs agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

from blocks.lint import RULES
from blocks.metadata import check_block, metadata_schema
from blocks.parse import VariantDoc
from blocks.templating import ALLOWED_FILTERS

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")


def test_the_schema_and_the_parser_know_the_same_variant_fields() -> None:
    schema_fields = set(metadata_schema()["$defs"]["variant"]["properties"])
    parser_fields = {field.alias or name for name, field in VariantDoc.model_fields.items()}
    assert schema_fields == parser_fields


def test_the_docs_publish_the_shipped_schema() -> None:
    match = re.search(r"metadata.schema.json: kept identical.*?```json\n(.*?)\n```", DOCS, re.S)
    assert match is not None
    assert json.loads(match.group(1)) == metadata_schema()


def test_the_docs_explain_every_field_rule_and_filter() -> None:
    for field in metadata_schema()["$defs"]["variant"]["properties"]:
        assert f"| `{field}` |" in DOCS, field
    for code, (severity, _) in RULES.items():
        assert f"| `{code}` | {severity} |" in DOCS, code
    for name in ALLOWED_FILTERS - {"d", "e"}:
        assert f"`{name}`" in DOCS, name


def test_the_docs_example_block_is_valid() -> None:
    block = {
        "id": "home-hero",
        "type": "hero",
        "variants": [
            {"id": "default", "default": True, "fields": {"heading": "Gear"}},
            {
                "id": "welcome-back",
                "audiences": ["returning"],
                "priority": 20,
                "fields": {"heading": "Welcome back"},
                "fallback": {"subheading": "New arrivals since your last visit."},
                "schedule": {"start": "2026-11-27T00:00:00", "timezone": "America/New_York"},
                "locales": ["de-DE"],
                "tags": ["seasonal"],
                "weight": 0.5,
                "ruleId": "r",
                "localized": {"de-DE": {"heading": "Willkommen"}},
            },
        ],
    }
    assert check_block(block) == []
