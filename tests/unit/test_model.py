"""The canonical content model: schedules, variants, blocks and pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from blocks.conditions import compile_condition
from blocks.model import Block, Page, Schedule, Variant

NEW_YORK = ZoneInfo("America/New_York")


def variant(variant_id: str, **meta: Any) -> Variant:
    fields = meta.pop("fields", {"name": variant_id})
    return Variant(id=variant_id, fields=fields, **meta)


def block(*variants: Variant, block_id: str = "b") -> Block:
    return Block(id=block_id, type="hero", variants=variants)


# -- Schedule -----------------------------------------------------------------

START = datetime(2026, 11, 27, 0, 0, tzinfo=NEW_YORK)  # 05:00 UTC
END = datetime(2026, 12, 1, 0, 0, tzinfo=NEW_YORK)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("schedule", "moment", "inside"),
    [
        pytest.param(Schedule(), datetime(1970, 1, 1, tzinfo=UTC), True, id="open-both-ends"),
        pytest.param(Schedule(start=START), START, True, id="start-is-inclusive"),
        pytest.param(Schedule(start=START), START - SECOND, False, id="before-start"),
        pytest.param(Schedule(end=END), END, False, id="end-is-exclusive"),
        pytest.param(Schedule(end=END), END - SECOND, True, id="just-before-end"),
        pytest.param(Schedule(START, END), START + timedelta(days=2), True, id="inside-window"),
        pytest.param(Schedule(START, END), END + timedelta(days=2), False, id="after-window"),
        pytest.param(
            Schedule(start=START),
            datetime(2026, 11, 27, 4, 59, 59, tzinfo=UTC),
            False,
            id="aware-compare-before-start-in-utc",
        ),
        pytest.param(
            Schedule(start=START),
            datetime(2026, 11, 27, 5, 0, tzinfo=UTC),
            True,
            id="aware-compare-start-in-utc",
        ),
        pytest.param(
            Schedule(end=END),
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            True,
            id="aware-compare-utc-midnight-is-still-inside-new-york",
        ),
    ],
)
def test_schedule_contains(schedule: Schedule, moment: datetime, inside: bool) -> None:
    assert schedule.contains(moment) is inside


# -- Variant ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "targeted"),
    [
        pytest.param({}, False, id="plain"),
        pytest.param({"audiences": ("vip",)}, True, id="audiences"),
        pytest.param({"condition": compile_condition({"device": "mobile"})}, True, id="condition"),
        pytest.param({"schedule": Schedule(start=START)}, False, id="schedule-is-not-targeting"),
        pytest.param({"locales": ("de",)}, False, id="locales-are-not-targeting"),
        pytest.param({"priority": 50}, False, id="priority-is-not-targeting"),
    ],
)
def test_variant_targeted(meta: dict[str, Any], targeted: bool) -> None:
    assert variant("v", **meta).targeted is targeted


BASE_FIELDS = {"heading": "Hello", "subheading": "Base sub"}


@pytest.mark.parametrize(
    ("localized", "locale", "expected"),
    [
        pytest.param({}, "de-DE", BASE_FIELDS, id="no-overrides"),
        pytest.param({"de-DE": {"heading": "Hallo"}}, None, BASE_FIELDS, id="no-locale"),
        pytest.param(
            {"de-DE": {"heading": "Hallo"}},
            "de-DE",
            {"heading": "Hallo", "subheading": "Base sub"},
            id="exact-locale-merges-over-base",
        ),
        pytest.param(
            {"de": {"heading": "Hallo"}},
            "de-AT",
            {"heading": "Hallo", "subheading": "Base sub"},
            id="language-fallback",
        ),
        pytest.param(
            {"de": {"heading": "Hallo"}, "de-CH": {"heading": "Grüezi"}},
            "de-CH",
            {"heading": "Grüezi", "subheading": "Base sub"},
            id="exact-beats-language",
        ),
        pytest.param({"de-DE": {"heading": "Hallo"}}, "fr-FR", BASE_FIELDS, id="unrelated-locale"),
        pytest.param(
            {"de-DE": {"heading": "Hallo"}},
            "de-AT",
            BASE_FIELDS,
            id="no-fallback-to-sibling-region",
        ),
        pytest.param({"de-DE": {}}, "de-DE", BASE_FIELDS, id="empty-override"),
        pytest.param(
            {"de-DE": {"extra": 1}},
            "de-DE",
            {**BASE_FIELDS, "extra": 1},
            id="override-adds-a-field",
        ),
    ],
)
def test_fields_for(
    localized: dict[str, dict[str, Any]], locale: str | None, expected: dict[str, Any]
) -> None:
    v = variant("v", fields=dict(BASE_FIELDS), localized=localized)
    assert dict(v.fields_for(locale)) == expected


def test_fields_for_does_not_mutate_base_fields() -> None:
    v = variant("v", fields=dict(BASE_FIELDS), localized={"de-DE": {"heading": "Hallo"}})
    v.fields_for("de-DE")
    assert v.fields == BASE_FIELDS


# -- Block --------------------------------------------------------------------

AUDIENCE = {"audiences": ("vip",)}
CONDITION = {"condition": compile_condition({"traits.orders": {"$gt": 0}})}
SCHEDULED = {"schedule": Schedule(start=START)}


@pytest.mark.parametrize(
    ("variants", "default_id"),
    [
        pytest.param(
            [variant("plain"), variant("targeted", **AUDIENCE), variant("marked", default=True)],
            "marked",
            id="explicit-default-wins-even-when-later",
        ),
        pytest.param(
            [variant("first", default=True), variant("second", default=True)],
            "first",
            id="first-explicit-default",
        ),
        pytest.param(
            [variant("vip", default=True, **AUDIENCE), variant("plain")],
            "vip",
            id="explicit-default-even-if-targeted",
        ),
        pytest.param(
            [
                variant("vip", **AUDIENCE),
                variant("cond", **CONDITION),
                variant("seasonal", **SCHEDULED),
                variant("plain"),
                variant("plain-2"),
            ],
            "plain",
            id="first-untargeted-unscheduled",
        ),
        pytest.param(
            [
                variant("vip", **AUDIENCE),
                variant("seasonal", **SCHEDULED),
                variant("cond", **CONDITION),
            ],
            "cond",
            id="else-the-last-variant",
        ),
        pytest.param([variant("only", **AUDIENCE)], "only", id="single-targeted-variant"),
    ],
)
def test_default_variant(variants: list[Variant], default_id: str) -> None:
    assert block(*variants).default_variant.id == default_id


def test_block_variant_lookup() -> None:
    b = block(variant("a"), variant("b"))
    assert b.variant("b") is b.variants[1]
    with pytest.raises(KeyError):
        b.variant("missing")


# -- Page ---------------------------------------------------------------------


def page(locales: tuple[str, ...], default_locale: str) -> Page:
    return Page(slug="p", title="P", blocks=(), locales=locales, default_locale=default_locale)


@pytest.mark.parametrize(
    ("locales", "default_locale", "requested", "resolved"),
    [
        pytest.param(("en-US", "de-DE"), "de-DE", None, "de-DE", id="none-is-default-locale"),
        pytest.param(("en-US", "de-DE"), "en-US", "de-DE", "de-DE", id="exact"),
        pytest.param(("en-US", "de-DE"), "en-US", "de", "de-DE", id="bare-language"),
        pytest.param(("en-US", "de-DE"), "en-US", "DE", "de-DE", id="bare-language-any-case"),
        pytest.param(("en-US", "en-GB"), "en-US", "en", "en-US", id="first-regional-form"),
        pytest.param(("en-GB", "en-US"), "en-US", "en", "en-GB", id="first-in-page-order"),
        pytest.param(("en-US", "de-DE"), "en-US", "fr", None, id="unknown-language"),
        pytest.param(("en-US", "de-DE"), "en-US", "de-AT", None, id="other-region"),
        pytest.param(("en-US",), "en-US", "fr-FR", None, id="unknown-locale"),
    ],
)
def test_resolve_locale(
    locales: tuple[str, ...], default_locale: str, requested: str | None, resolved: str | None
) -> None:
    assert page(locales, default_locale).resolve_locale(requested) == resolved


def test_title_for_falls_back_to_default_title() -> None:
    p = Page(slug="p", title="Home", blocks=(), titles={"de-DE": "Startseite"})
    assert p.title_for("de-DE") == "Startseite"
    assert p.title_for("fr-FR") == "Home"


def test_model_is_immutable() -> None:
    v = variant("v")
    with pytest.raises(AttributeError):
        v.priority = 5  # type: ignore[misc]
