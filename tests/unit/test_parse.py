"""Parsing content documents: valid pages, precise problem paths, page-level errors."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from blocks.model import Block, Schedule, Variant
from blocks.parse import (
    ContentError,
    ContentProblem,
    ParsedPage,
    parse_block,
    parse_page,
    parse_variant,
)


def hero(variant_id: str, heading: str | None = None, **meta: Any) -> dict[str, Any]:
    return {"id": variant_id, "fields": {"heading": heading or f"Heading {variant_id}"}, **meta}


def hero_block(block_id: str, *variants: dict[str, Any]) -> dict[str, Any]:
    return {"id": block_id, "type": "hero", "variants": list(variants)}


def page_doc(*blocks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"slug": "home", "title": "Home", "blocks": list(blocks), **extra}


def paths(parsed: ParsedPage) -> list[str]:
    return [problem.path for problem in parsed.problems]


# -- a valid page ------------------------------------------------------------------------

VALID_PAGE: dict[str, Any] = {
    "slug": "home",
    "title": "Home",
    "titles": {"de-DE": "Startseite"},
    "description": "The home page",
    "locales": ["en-US", "de-DE"],
    "defaultLocale": "de-DE",
    "blocks": [
        {
            "id": "home-hero",
            "type": "hero",
            "variants": [
                {
                    "id": "default",
                    "default": True,
                    "fields": {"heading": "  Gear for every trail  ", "subheading": None},
                    "localized": {"de-DE": {"heading": "Ausrüstung"}},
                },
                {
                    "id": "vip",
                    "audiences": ["high_value", "returning"],
                    "audienceMatch": "all",
                    "condition": {"traits.orders": {"$gte": 1}},
                    "priority": 30,
                    "schedule": {
                        "start": "2026-11-27T00:00:00",
                        "end": "2026-12-01T00:00:00",
                        "timezone": "America/New_York",
                    },
                    "locales": ["en-US", "de"],
                    "tags": ["seasonal"],
                    "weight": 0.5,
                    "ruleId": "vip-rule",
                    "experiment": {"key": "hero-test", "variations": ["default", "vip"]},
                    "fields": {"heading": "Members first"},
                },
            ],
        },
        {
            "id": "finder",
            "type": "store_locator",
            "variants": [{"id": "default", "fields": {"radiusKm": 50, "nested": {"a": [1]}}}],
        },
    ],
}


def test_valid_page_parses_without_problems() -> None:
    parsed = parse_page(copy.deepcopy(VALID_PAGE))
    assert parsed.problems == ()
    page = parsed.page
    assert (page.slug, page.title, page.description) == ("home", "Home", "The home page")
    assert page.locales == ("en-US", "de-DE")
    assert page.default_locale == "de-DE"
    assert dict(page.titles) == {"de-DE": "Startseite"}
    assert [(b.id, b.type) for b in page.blocks] == [
        ("home-hero", "hero"),
        ("finder", "store_locator"),
    ]
    default, vip = page.blocks[0].variants
    assert default.default is True
    assert dict(default.fields) == {"heading": "Gear for every trail"}  # stripped, None dropped
    assert dict(default.localized) == {"de-DE": {"heading": "Ausrüstung"}}
    assert vip.audiences == ("high_value", "returning")
    assert vip.audience_match == "all"
    assert vip.condition is not None
    assert vip.condition.valid
    assert vip.condition.matches({"traits": {"orders": 2}})
    assert vip.priority == 30
    assert vip.locales == ("en-US", "de")
    assert vip.tags == ("seasonal",)
    assert vip.weight == 0.5
    assert vip.rule_id == "vip-rule"
    assert vip.schedule == Schedule(
        start=datetime(2026, 11, 27, 5, 0, tzinfo=UTC),
        end=datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
    )
    assert dict(page.blocks[1].variants[0].fields) == {"radiusKm": 50, "nested": {"a": [1]}}
    (experiment,) = page.experiments
    assert (experiment.key, experiment.variation_keys) == ("hero-test", ("default", "vip"))


def test_page_defaults() -> None:
    parsed = parse_page({"slug": "empty", "title": "Empty", "blocks": []})
    page = parsed.page
    assert (page.locales, page.default_locale, dict(page.titles)) == (("en-US",), "en-US", {})
    assert page.blocks == ()
    assert page.description is None
    assert parsed.problems == ()


def test_default_locale_is_the_first_locale() -> None:
    page = parse_page(page_doc(locales=["de-DE", "en-US"])).page
    assert page.default_locale == "de-DE"


def test_non_string_description_is_ignored() -> None:
    assert parse_page(page_doc(description=["x"])).page.description is None


# -- variant problems: precise paths, the rest of the page survives ----------------------------

VARIANT_ERRORS = [
    pytest.param({"priority": "high"}, "priority", id="priority-not-int"),
    pytest.param({"priority": 1.5}, "priority", id="priority-fractional"),
    pytest.param({"fields": {}}, "fields.heading", id="hero-missing-heading"),
    pytest.param({"fields": {"heading": "   "}}, "fields.heading", id="hero-blank-heading"),
    pytest.param({"fields": {"heading": "x", "colour": "red"}}, "fields.colour", id="extra-field"),
    pytest.param(
        {"fields": {"heading": "x", "cta": {"label": "Go"}}}, "fields.cta.url", id="nested-field"
    ),
    pytest.param({"colour": "red"}, "colour", id="unknown-metadata-forbidden"),
    pytest.param({"audienceMatch": "most"}, "audienceMatch", id="audience-match-value"),
    pytest.param({"audiences": "vip"}, "audiences", id="audiences-not-a-list"),
    pytest.param({"locales": "de"}, "locales", id="locales-not-a-list"),
    pytest.param({"weight": -1}, "weight", id="negative-weight"),
    pytest.param({"id": ""}, "id", id="empty-id"),
    pytest.param({"id": "x" * 129}, "id", id="id-too-long"),
    pytest.param(
        {"schedule": {"start": "2026-12-01T00:00:00", "end": "2026-11-27T00:00:00"}},
        "schedule.end",
        id="end-before-start",
    ),
    pytest.param(
        {"schedule": {"start": "2026-12-01T00:00:00", "end": "2026-12-01T00:00:00"}},
        "schedule.end",
        id="end-equals-start",
    ),
    pytest.param(
        {
            "schedule": {
                "start": "2026-12-01T06:00:00+01:00",
                "end": "2026-12-01T00:00:00",
                "timezone": "America/New_York",
            }
        },
        "schedule.end",
        id="end-before-start-across-zones",
    ),
    pytest.param({"schedule": {"timezone": "Mars/Olympus"}}, "schedule.timezone", id="bad-zone"),
    pytest.param({"schedule": {"start": "soon"}}, "schedule.start", id="bad-start"),
    pytest.param({"schedule": {"starts": "2026-12-01"}}, "schedule.starts", id="schedule-extra"),
    pytest.param(
        {"condition": {"country": {"$inn": ["DE"]}}},
        "condition.country.$inn",
        id="condition-unknown-operator",
    ),
    pytest.param(
        {"condition": {"$and": [{"a": 1}, {"b": {"$gt": [1]}}]}},
        "condition.$and[1].b.$gt",
        id="condition-nested-path",
    ),
    pytest.param({"condition": {"a": {"$regex": "("}}}, "condition.a.$regex", id="bad-regex"),
    pytest.param({"condition": ["not", "an", "object"]}, "condition", id="condition-not-object"),
]


@pytest.mark.parametrize(("changes", "suffix"), VARIANT_ERRORS)
def test_bad_variant_is_dropped_with_its_path(changes: dict[str, Any], suffix: str) -> None:
    bad = {**hero("bad"), **changes}
    document = page_doc(
        hero_block("first", hero("only")),
        hero_block("second", bad, hero("good")),
    )
    parsed = parse_page(document)
    assert paths(parsed) == [f"blocks[1].variants[0].{suffix}"]
    assert all(problem.message for problem in parsed.problems)
    assert [b.id for b in parsed.page.blocks] == ["first", "second"]
    assert [v.id for v in parsed.page.blocks[1].variants] == ["good"]


def test_problem_path_counts_variant_index() -> None:
    document = page_doc(
        hero_block("b", hero("a"), hero("b"), {"id": "c", "fields": {"subheading": "no heading"}})
    )
    parsed = parse_page(document)
    assert paths(parsed) == ["blocks[0].variants[2].fields.heading"]
    assert str(parsed.problems[0]).startswith("blocks[0].variants[2].fields.heading: ")


def test_variant_that_is_not_an_object() -> None:
    parsed = parse_page(page_doc(hero_block("b", "oops", hero("good"))))  # type: ignore[arg-type]
    assert parsed.problems == (
        ContentProblem("blocks[0].variants[0]", "a variant must be an object"),
    )


def test_duplicate_variant_ids_are_reported_and_skipped() -> None:
    document = page_doc(hero_block("b", hero("a", "First"), hero("a", "Second"), hero("c")))
    parsed = parse_page(document)
    assert paths(parsed) == ["blocks[0].variants[1].id"]
    assert "duplicate" in parsed.problems[0].message
    variants = parsed.page.blocks[0].variants
    assert [v.id for v in variants] == ["a", "c"]
    assert variants[0].fields["heading"] == "First"


def test_duplicate_block_ids_are_reported_and_skipped() -> None:
    document = page_doc(
        hero_block("b", hero("first")),
        hero_block("other", hero("x")),
        hero_block("b", hero("again")),
    )
    parsed = parse_page(document)
    assert paths(parsed) == ["blocks[2].id"]
    assert "duplicate" in parsed.problems[0].message
    assert [(b.id, b.variants[0].id) for b in parsed.page.blocks] == [
        ("b", "first"),
        ("other", "x"),
    ]


def test_block_with_no_valid_variant_is_dropped_and_the_page_still_parses() -> None:
    document = page_doc(
        hero_block("broken", {"id": "x", "fields": {}}, {"id": "y", "priority": "high"}),
        hero_block("fine", hero("a")),
    )
    parsed = parse_page(document)
    assert paths(parsed) == [
        "blocks[0].variants[0].fields.heading",
        "blocks[0].variants[1].priority",
        "blocks[0].variants",
    ]
    assert [b.id for b in parsed.page.blocks] == ["fine"]
    assert all(b.variants for b in parsed.page.blocks)


@pytest.mark.parametrize(
    ("block", "path"),
    [
        pytest.param("not a block", "blocks[0]", id="not-an-object"),
        pytest.param({"type": "hero", "variants": [hero("a")]}, "blocks[0].id", id="missing-id"),
        pytest.param(
            {"id": "", "type": "hero", "variants": [hero("a")]}, "blocks[0].id", id="empty-id"
        ),
        pytest.param({"id": "b", "variants": [hero("a")]}, "blocks[0].type", id="missing-type"),
        pytest.param(
            {"id": "b", "type": 3, "variants": [hero("a")]}, "blocks[0].type", id="type-int"
        ),
        pytest.param({"id": "b", "type": "hero"}, "blocks[0].variants", id="missing-variants"),
        pytest.param({"id": "b", "type": "hero", "variants": []}, "blocks[0].variants", id="empty"),
        pytest.param(
            {"id": "b", "type": "hero", "variants": {"id": "a"}}, "blocks[0].variants", id="dict"
        ),
    ],
)
def test_bad_block_is_dropped_with_its_path(block: Any, path: str) -> None:
    parsed = parse_page(page_doc(block, hero_block("kept", hero("a"))))
    assert paths(parsed) == [path]
    assert [b.id for b in parsed.page.blocks] == ["kept"]


def test_parse_block_collects_problems_in_the_given_list() -> None:
    problems: list[ContentProblem] = []
    block = parse_block(hero_block("b", hero("a"), {"id": "z", "fields": {}}), "here", problems)
    assert isinstance(block, Block)
    assert [v.id for v in block.variants] == ["a"]
    assert [p.path for p in problems] == ["here.variants[1].fields.heading"]
    with pytest.raises(ContentError) as info:
        parse_block(hero_block("b", {"id": "z", "fields": {}}), "here", problems)
    assert info.value.path == "here.variants"


# -- page-level errors -------------------------------------------------------------------------

GOOD_BLOCKS = [hero_block("b", hero("a"))]


@pytest.mark.parametrize(
    ("document", "path"),
    [
        pytest.param({"title": "T", "blocks": []}, "slug", id="no-slug"),
        pytest.param({"slug": "", "title": "T", "blocks": []}, "slug", id="empty-slug"),
        pytest.param({"slug": 5, "title": "T", "blocks": []}, "slug", id="slug-int"),
        pytest.param({"slug": "s", "blocks": []}, "title", id="no-title"),
        pytest.param({"slug": "s", "title": "", "blocks": []}, "title", id="empty-title"),
        pytest.param({"slug": "s", "title": "T"}, "blocks", id="no-blocks"),
        pytest.param({"slug": "s", "title": "T", "blocks": {"b": 1}}, "blocks", id="blocks-dict"),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "locales": "en-US"},
            "locales",
            id="locales-str",
        ),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "locales": []}, "locales", id="locales-empty"
        ),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "locales": [""]}, "locales", id="locale-empty"
        ),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "locales": [5]}, "locales", id="locale-int"
        ),
        pytest.param(
            {
                "slug": "s",
                "title": "T",
                "blocks": [],
                "locales": ["en-US"],
                "defaultLocale": "de-DE",
            },
            "defaultLocale",
            id="default-locale-not-listed",
        ),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "titles": {"de-DE": 5}}, "titles", id="titles"
        ),
        pytest.param(
            {"slug": "s", "title": "T", "blocks": [], "titles": ["x"]}, "titles", id="titles-list"
        ),
    ],
)
def test_structural_page_errors_raise(document: dict[str, Any], path: str) -> None:
    with pytest.raises(ContentError) as info:
        parse_page(document)
    assert info.value.path == path
    assert info.value.message
    assert str(info.value) == f"{path}: {info.value.message}"


def test_page_that_is_not_an_object_names_the_source() -> None:
    with pytest.raises(ContentError) as info:
        parse_page(["not", "a", "page"], source="pages/home")
    assert info.value.path == "pages/home"


def test_content_error_is_a_value_error() -> None:
    assert issubclass(ContentError, ValueError)
    error = ContentError("", "plain message")
    assert str(error) == "plain message"


# -- schedules -------------------------------------------------------------------------------

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("schedule", "start"),
    [
        pytest.param(
            {"start": "2026-11-27T00:00:00", "timezone": "America/New_York"},
            datetime(2026, 11, 27, 5, 0, tzinfo=UTC),
            id="naive-in-zone",
        ),
        pytest.param(
            {"start": "2026-07-01T00:00:00", "timezone": "America/New_York"},
            datetime(2026, 7, 1, 4, 0, tzinfo=UTC),
            id="naive-in-zone-daylight-saving",
        ),
        pytest.param(
            {"start": "2026-11-27T00:00:00"},
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
            id="naive-defaults-to-utc",
        ),
        pytest.param(
            {"start": "2026-11-27T00:00:00+01:00", "timezone": "America/New_York"},
            datetime(2026, 11, 26, 23, 0, tzinfo=UTC),
            id="explicit-offset-wins",
        ),
        pytest.param(
            {"start": datetime(2026, 11, 27), "timezone": "America/New_York"},
            datetime(2026, 11, 27, 5, 0, tzinfo=UTC),
            id="yaml-datetime-object",
        ),
    ],
)
def test_schedule_times(schedule: dict[str, Any], start: datetime) -> None:
    variant = parse_variant("hero", hero("v", schedule=schedule), "v")
    assert variant.schedule is not None
    assert variant.schedule.start is not None
    assert variant.schedule.start.tzinfo is not None
    assert variant.schedule.start == start
    assert variant.schedule.end is None


def test_schedule_naive_times_keep_the_zone() -> None:
    variant = parse_variant(
        "hero",
        hero("v", schedule={"end": "2026-12-01T00:00:00", "timezone": "America/New_York"}),
        "v",
    )
    assert variant.schedule == Schedule(end=datetime(2026, 12, 1, tzinfo=NY))
    assert variant.schedule.contains(datetime(2026, 12, 1, 4, 59, tzinfo=UTC))
    assert not variant.schedule.contains(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus", "", "../../etc/passwd", "UTC+5"],
    ids=["made-up", "empty", "path", "offset"],
)
def test_unknown_timezone_is_rejected(zone: str) -> None:
    with pytest.raises(ContentError) as info:
        parse_variant("hero", hero("v", schedule={"timezone": zone}), "v")
    assert info.value.path == "v.schedule.timezone"


# -- fields per block type -----------------------------------------------------------------------

PRODUCT = {"sku": "TENT-2P", "name": "Tent", "price": 329.0}


@pytest.mark.parametrize(
    ("block_type", "fields", "path"),
    [
        pytest.param("hero", {}, "v.fields.heading", id="hero-needs-heading"),
        pytest.param(
            "hero",
            {"heading": "x", "image": {"alt": "a"}},
            "v.fields.image.url",
            id="hero-image-url",
        ),
        pytest.param(
            "hero",
            {"heading": "x", "image": {"url": "/i.jpg", "width": 0}},
            "v.fields.image.width",
            id="image-width",
        ),
        pytest.param("banner", {"tone": "info"}, "v.fields.text", id="banner-needs-text"),
        pytest.param("rich_text", {}, "v.fields.html", id="rich-text-needs-html"),
        pytest.param(
            "product_grid",
            {"title": "T", "products": [{**PRODUCT, "price": -0.01}]},
            "v.fields.products[0].price",
            id="negative-price",
        ),
        pytest.param(
            "product_grid",
            {"title": "T", "products": [PRODUCT, {**PRODUCT, "currency": "US"}]},
            "v.fields.products[1].currency",
            id="currency-three-letters",
        ),
        pytest.param(
            "product_grid", {"title": "T", "products": []}, "v.fields.products", id="no-products"
        ),
        pytest.param("call_to_action", {"heading": "H"}, "v.fields.button", id="cta-needs-button"),
        pytest.param(
            "testimonial",
            {"quote": "q", "author": "a", "rating": 0},
            "v.fields.rating",
            id="rating-0",
        ),
        pytest.param(
            "testimonial",
            {"quote": "q", "author": "a", "rating": 6},
            "v.fields.rating",
            id="rating-6",
        ),
        pytest.param("testimonial", {"quote": "q"}, "v.fields.author", id="needs-author"),
        pytest.param("store_locator", ["not", "an", "object"], "v.fields", id="generic-not-object"),
        pytest.param("store_locator", "text", "v.fields", id="generic-string"),
    ],
)
def test_fields_are_validated_per_block_type(block_type: str, fields: Any, path: str) -> None:
    with pytest.raises(ContentError) as info:
        parse_variant(block_type, {"id": "v", "fields": fields}, "v")
    assert info.value.path == path


@pytest.mark.parametrize(
    ("block_type", "fields", "expected"),
    [
        pytest.param("hero", {"heading": "Hi"}, {"heading": "Hi"}, id="hero-minimal"),
        pytest.param(
            "banner", {"text": "Sale"}, {"text": "Sale", "tone": "info"}, id="banner-default-tone"
        ),
        pytest.param(
            "product_grid",
            {"title": "T", "products": [{**PRODUCT, "price": 0}]},
            {"title": "T", "products": [{**PRODUCT, "price": 0.0, "currency": "USD"}]},
            id="free-product-and-default-currency",
        ),
        pytest.param(
            "testimonial",
            {"quote": "q", "author": "a", "rating": 1},
            {"quote": "q", "author": "a", "rating": 1},
            id="rating-1",
        ),
        pytest.param(
            "testimonial",
            {"quote": "q", "author": "a", "rating": 5},
            {"quote": "q", "author": "a", "rating": 5},
            id="rating-5",
        ),
        pytest.param(
            "store_locator",
            {"headline": "Find us", "radiusKm": 50, "x": None, "list": [1, {"a": 2}]},
            {"headline": "Find us", "radiusKm": 50, "x": None, "list": [1, {"a": 2}]},
            id="generic-passes-through",
        ),
        pytest.param("store_locator", {}, {}, id="generic-empty"),
    ],
)
def test_valid_fields(block_type: str, fields: Any, expected: dict[str, Any]) -> None:
    variant = parse_variant(block_type, {"id": "v", "fields": fields}, "v")
    assert dict(variant.fields) == expected


def test_missing_fields_default_to_an_empty_object_for_generic_types() -> None:
    assert dict(parse_variant("widget", {"id": "v"}, "v").fields) == {}


def test_localized_overrides_are_validated_against_the_block_type() -> None:
    with pytest.raises(ContentError):
        parse_variant("hero", hero("v", localized={"de-DE": {"heading": ""}}), "v")
    with pytest.raises(ContentError):
        parse_variant("hero", hero("v", localized={"de-DE": {"unknown": "x"}}), "v")
    ok = parse_variant("hero", hero("v", localized={"de-DE": {"heading": "Hallo"}}), "v")
    assert ok.fields_for("de-DE")["heading"] == "Hallo"


def test_parse_variant_returns_a_variant_with_defaults() -> None:
    variant = parse_variant("hero", hero("v"), "v")
    assert variant == Variant(id="v", fields={"heading": "Heading v"})


def test_parse_does_not_mutate_the_document() -> None:
    document = copy.deepcopy(VALID_PAGE)
    parse_page(document)
    assert document == VALID_PAGE
