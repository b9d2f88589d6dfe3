"""Map CMS entries, once links are resolved, to the document `parse_page` reads.

Every CMS content model uses the same field names (see docs/cms/*.md):

page:    slug, title, locales, defaultLocale, titles, description, blocks
block:   blockId, type, variants
variant: variantId, fields, image (a linked asset, merged into fields),
         audiences, audienceMatch, condition, priority, scheduleStart,
         scheduleEnd, scheduleTimezone, locales, tags, weight, isDefault,
         experiment, ruleId, localized

JSON-valued fields (`fields`, `condition`, `experiment`, `localized`,
`titles`) may arrive as objects or, from CMSs without a JSON field type, as
JSON text. Empty values (None, "", []) mean "not set".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blocks.parse import ContentError, ParsedPage, parse_page
from cms_adapters.errors import MalformedContent
from common.json_input import JSONInputError, loads

_JSON_FIELDS = ("fields", "condition", "experiment", "localized")
_PLAIN_FIELDS = ("audiences", "audienceMatch", "priority", "locales", "tags", "weight", "ruleId")


def as_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def json_value(cms: str, entry: str, field: str, value: Any) -> Any:
    """An object field, parsing JSON text; MalformedContent names the field otherwise."""
    if isinstance(value, str):
        try:
            # Editors' data: nesting deep enough to exhaust the parser is malformed too.
            return loads(value, strict=False)
        except JSONInputError as exc:
            message = f"not valid JSON: {exc}"
            raise MalformedContent(cms, message, entry=entry, field=field) from None
    return value


def variant_document(cms: str, entry: str, path: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical variant dict for one CMS variant entry."""
    document: dict[str, Any] = {"id": raw.get("variantId")}
    for name in _JSON_FIELDS:
        if not _empty(raw.get(name)):
            try:
                document[name] = json_value(cms, entry, f"{path}.{name}", raw[name])
            except MalformedContent:
                # Left as text: parse_page drops just this variant and reports the field.
                document[name] = raw[name]
    for name in _PLAIN_FIELDS:
        if not _empty(raw.get(name)):
            document[name] = raw[name]
    image = raw.get("image")
    if isinstance(image, Mapping) and image.get("url"):
        fields = document.get("fields")
        if isinstance(fields, dict) and "image" not in fields:
            document["fields"] = {**fields, "image": dict(image)}
    if raw.get("isDefault"):
        document["default"] = True
    schedule = {
        key: raw[source]
        for key, source in (
            ("start", "scheduleStart"),
            ("end", "scheduleEnd"),
            ("timezone", "scheduleTimezone"),
        )
        if not _empty(raw.get(source))
    }
    if schedule:
        document["schedule"] = schedule
    return document


def block_document(cms: str, entry: str, path: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical block dict for one CMS block entry with its variants inlined."""
    variants = raw.get("variants")
    return {
        "id": raw.get("blockId"),
        "type": raw.get("type"),
        "variants": [
            variant_document(cms, entry, f"{path}.variants[{index}]", variant)
            if isinstance(variant, Mapping)
            else variant
            for index, variant in enumerate(variants)
        ]
        if isinstance(variants, list)
        else variants,
    }


def page_document(cms: str, entry: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical page dict for one CMS page entry with its blocks inlined."""
    document: dict[str, Any] = {"slug": raw.get("slug"), "title": raw.get("title")}
    for name in ("locales", "defaultLocale", "description"):
        if not _empty(raw.get(name)):
            document[name] = raw[name]
    if not _empty(raw.get("titles")):
        document["titles"] = json_value(cms, entry, "titles", raw["titles"])
    blocks = raw.get("blocks")
    document["blocks"] = (
        [
            block_document(cms, entry, f"blocks[{index}]", block)
            if isinstance(block, Mapping)
            else block
            for index, block in enumerate(blocks)
        ]
        if isinstance(blocks, list)
        else blocks
    )
    return document


def to_parsed(cms: str, entry: str, raw: Mapping[str, Any], slug: str) -> ParsedPage:
    """Parse a resolved CMS page entry; MalformedContent names the CMS, entry and field."""
    document = page_document(cms, entry, raw)
    try:
        parsed = parse_page(document, source=entry)
    except ContentError as exc:
        raise MalformedContent(cms, exc.message, entry=entry, field=exc.path) from None
    if parsed.page.slug != slug:
        raise MalformedContent(
            cms, f"slug {parsed.page.slug!r} does not match {slug!r}", entry=entry, field="slug"
        )
    return parsed
