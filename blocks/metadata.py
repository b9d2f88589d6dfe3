"""The editor metadata vocabulary as a JSON Schema, and schema checks with suggestions.

`metadata.schema.json` (shipped beside this module, published in
docs/editors.md) describes a block and its variants. `check_block` reports
every violation with a field path, a finding code and, for an unknown field
that looks like a typo of a known one, the field the editor probably meant.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from blocks.conditions import json_kind

SCHEMA_FILE = "metadata.schema.json"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One schema violation: `code` is `schema.type`, `schema.unknown-field`, ..."""

    path: str
    code: str
    message: str
    suggestion: str = ""


@cache
def metadata_schema() -> dict[str, Any]:
    """The JSON Schema of blocks and variants, as shipped in the package."""
    text = resources.files("blocks").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    schema = metadata_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def format_path(prefix: str, parts: Iterable[Any]) -> str:
    """`prefix` extended with JSON path parts: `blocks[1].variants[0].priority`."""
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _known_keys(schema: dict[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def _describe(error: ValidationError, prefix: str) -> list[SchemaProblem]:
    path = format_path(prefix, error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = _known_keys(schema)
        problems = []
        for key in sorted(k for k in error.instance if k not in known):
            where = format_path(path, [key])
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
            if close:
                problems.append(
                    SchemaProblem(
                        where,
                        "schema.typo",
                        f"unknown field {key!r}: probably a typo of {close[0]!r}",
                        f"rename it to {close[0]!r}",
                    )
                )
            else:
                problems.append(
                    SchemaProblem(
                        where,
                        "schema.unknown-field",
                        f"unknown field {key!r}",
                        f"remove it; known fields: {', '.join(known)}",
                    )
                )
        return problems
    if error.validator == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return [
            SchemaProblem(
                path,
                "schema.type",
                f"must be {'an' if wanted[0] in 'aeio' else 'a'} {wanted}, "
                f"not {json_kind(error.instance)}",
                f"write a value of type {wanted}",
            )
        ]
    if error.validator == "required":
        return [SchemaProblem(path, "schema.required", error.message, "add the field")]
    if error.validator == "enum":
        choices: Any = error.validator_value
        allowed = ", ".join(repr(v) for v in choices)
        return [
            SchemaProblem(
                path,
                "schema.invalid",
                f"{error.instance!r} is not one of {allowed}",
                f"use one of {allowed}",
            )
        ]
    return [SchemaProblem(path, "schema.invalid", error.message, "")]


def check_block(document: Any, prefix: str = "") -> list[SchemaProblem]:
    """Every way `document` (a block with its variants) violates the metadata schema."""
    errors: Sequence[ValidationError] = sorted(
        _validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    problems: list[SchemaProblem] = []
    for error in errors:
        problems.extend(_describe(error, prefix))
    return problems
