"""Variant selection: eligibility, ranking, defaults, decisions and their scope."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from blocks.conditions import compile_condition
from blocks.context import TargetingContext
from blocks.model import Block, Page, Schedule, Variant
from blocks.selection import (
    REASON_CONDITION,
    REASON_DEFAULT,
    REASON_PRIORITY,
    REASON_PROFILE_UNAVAILABLE,
    Decision,
    PageDecision,
    Scope,
    eligibility,
    select_page,
    select_variant,
    strictest,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def variant(variant_id: str, **meta: Any) -> Variant:
    if isinstance(meta.get("condition"), dict):
        meta["condition"] = compile_condition(meta["condition"])
    return Variant(id=variant_id, fields={"name": variant_id}, **meta)


def block(*variants: Variant, block_id: str = "hero") -> Block:
    return Block(id=block_id, type="hero", variants=variants)


def context(
    *,
    audiences: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
    locale: str | None = "en-US",
    now: datetime = NOW,
    profile_available: bool = True,
) -> TargetingContext:
    return TargetingContext(
        attributes=dict(attributes or {}),
        audiences=frozenset(audiences),
        now=now,
        locale=locale,
        profile_available=profile_available,
    )


# -- eligibility ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "ctx", "reason"),
    [
        pytest.param({}, context(), REASON_PRIORITY, id="untargeted-is-priority"),
        pytest.param(
            {"audiences": ("a", "b")}, context(audiences={"b"}), "audience:b", id="any-one-match"
        ),
        pytest.param(
            {"audiences": ("a", "b")},
            context(audiences={"b", "a"}),
            "audience:a",
            id="any-names-first-match-in-variant-order",
        ),
        pytest.param({"audiences": ("a", "b")}, context(audiences={"c"}), None, id="any-no-match"),
        pytest.param({"audiences": ("a",)}, context(), None, id="any-visitor-in-no-audience"),
        pytest.param(
            {"audiences": ("a", "b"), "audience_match": "all"},
            context(audiences={"a", "b", "c"}),
            "audience:a+b",
            id="all-match",
        ),
        pytest.param(
            {"audiences": ("b", "a"), "audience_match": "all"},
            context(audiences={"a", "b"}),
            "audience:b+a",
            id="all-match-keeps-variant-order",
        ),
        pytest.param(
            {"audiences": ("a", "b"), "audience_match": "all"},
            context(audiences={"a"}),
            None,
            id="all-partial-match",
        ),
        pytest.param(
            {"condition": {"device": "mobile"}},
            context(attributes={"device": "mobile"}),
            REASON_CONDITION,
            id="condition-true",
        ),
        pytest.param(
            {"condition": {"device": "mobile"}},
            context(attributes={"device": "desktop"}),
            None,
            id="condition-false",
        ),
        pytest.param(
            {"audiences": ("a",), "condition": {"device": "mobile"}},
            context(audiences={"a"}, attributes={"device": "mobile"}),
            "audience:a",
            id="audience-and-condition-reports-audience",
        ),
        pytest.param(
            {"audiences": ("a",), "condition": {"device": "mobile"}},
            context(audiences={"a"}, attributes={"device": "desktop"}),
            None,
            id="audience-matches-condition-fails",
        ),
        pytest.param(
            {"audiences": ("a",), "condition": {"device": "mobile"}},
            context(attributes={"device": "mobile"}),
            None,
            id="condition-matches-audience-fails",
        ),
    ],
)
def test_eligibility_reason(
    meta: dict[str, Any], ctx: TargetingContext, reason: str | None
) -> None:
    assert eligibility(variant("v", **meta), ctx) == reason


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param({"country": {"$inn": ["DE"]}}, id="unknown-operator"),
        pytest.param({"a": {"$regex": "("}}, id="invalid-regex"),
        pytest.param({"$and": {"not": "a list"}}, id="and-not-a-list"),
        pytest.param({"a": {"$gt": [1]}}, id="wrong-argument-type"),
    ],
)
def test_malformed_condition_is_ineligible_and_never_raises(condition: dict[str, Any]) -> None:
    bad = variant("bad", condition=condition, priority=100)
    assert not bad.condition.valid  # type: ignore[union-attr]
    weird_attributes = {"country": ["DE"], "a": {"nested": object()}}
    assert eligibility(bad, context(attributes=weird_attributes)) is None
    decision = select_variant(block(variant("base"), bad), context(attributes=weird_attributes))
    assert (decision.variant_id, decision.reason) == ("base", REASON_DEFAULT)


STARTS = datetime(2026, 6, 1, 0, 0, tzinfo=ZoneInfo("America/New_York"))  # 04:00 UTC
ENDS = STARTS + timedelta(days=1)


@pytest.mark.parametrize(
    ("now", "eligible"),
    [
        pytest.param(datetime(2026, 6, 1, 3, 59, 59, tzinfo=UTC), False, id="before-start"),
        pytest.param(datetime(2026, 6, 1, 4, 0, tzinfo=UTC), True, id="start-inclusive"),
        pytest.param(datetime(2026, 6, 2, 3, 59, 59, tzinfo=UTC), True, id="last-second"),
        pytest.param(datetime(2026, 6, 2, 4, 0, tzinfo=UTC), False, id="end-exclusive"),
        pytest.param(
            datetime(2026, 6, 1, 6, 0, tzinfo=ZoneInfo("Europe/Berlin")),
            True,
            id="other-zone-same-instant-as-start",
        ),
    ],
)
def test_schedule_window(now: datetime, eligible: bool) -> None:
    seasonal = variant("seasonal", schedule=Schedule(start=STARTS, end=ENDS))
    assert (eligibility(seasonal, context(now=now)) is not None) is eligible


@pytest.mark.parametrize(
    ("locales", "locale", "eligible"),
    [
        pytest.param((), "fr-FR", True, id="unrestricted"),
        pytest.param((), None, True, id="unrestricted-no-locale"),
        pytest.param(("de-DE",), "de-DE", True, id="exact"),
        pytest.param(("de",), "de-DE", True, id="language-matches-region"),
        pytest.param(("de",), "de-AT", True, id="language-matches-other-region"),
        pytest.param(("de-DE",), "de-AT", False, id="other-region"),
        pytest.param(("en-US",), "de-DE", False, id="other-language"),
        pytest.param(("en-US", "de"), "de-CH", True, id="one-of-several"),
        pytest.param(("de",), None, False, id="restricted-without-locale"),
    ],
)
def test_locale_restriction(locales: tuple[str, ...], locale: str | None, eligible: bool) -> None:
    restricted = variant("v", locales=locales)
    assert (eligibility(restricted, context(locale=locale)) is not None) is eligible


# -- select_variant -------------------------------------------------------------


def test_highest_priority_wins_regardless_of_order() -> None:
    b = block(
        variant("base", default=True),
        variant("low", audiences=("a",), priority=10),
        variant("high", audiences=("a",), priority=30),
        variant("mid", audiences=("a",), priority=20),
    )
    decision = select_variant(b, context(audiences={"a"}))
    assert decision.variant_id == "high"
    assert decision.reason == "audience:a"


def test_ineligible_higher_priority_is_skipped() -> None:
    b = block(
        variant("base", default=True),
        variant("vip", audiences=("vip",), priority=50),
        variant("mobile", condition={"device": "mobile"}, priority=10),
    )
    decision = select_variant(b, context(attributes={"device": "mobile"}))
    assert (decision.variant_id, decision.reason) == ("mobile", REASON_CONDITION)


def test_priority_tie_goes_to_the_earlier_variant() -> None:
    b = block(
        variant("base", default=True),
        variant("first", audiences=("b",), priority=10),
        variant("second", audiences=("a",), priority=10),
        variant("third", priority=10),
    )
    decision = select_variant(b, context(audiences={"a", "b"}))
    assert (decision.variant_id, decision.reason) == ("first", "audience:b")


def test_default_never_competes_even_with_the_highest_priority() -> None:
    b = block(variant("base", default=True, priority=1000), variant("other", priority=-5))
    decision = select_variant(b, context())
    assert (decision.variant_id, decision.reason) == ("other", REASON_PRIORITY)
    assert decision.rule_id == "hero/other"


def test_untargeted_non_default_variant_wins_with_reason_priority() -> None:
    b = block(variant("base"), variant("promo"))  # "base" is the implicit default
    decision = select_variant(b, context())
    assert (decision.variant_id, decision.reason) == ("promo", REASON_PRIORITY)


def test_no_eligible_variant_falls_back_to_default() -> None:
    b = block(
        variant("vip", audiences=("vip",), priority=10),
        variant("base", default=True),
        variant("de", locales=("de",)),
    )
    decision = select_variant(b, context(locale="en-US"))
    assert decision == Decision(
        block_id="hero",
        variant_id="base",
        reason=REASON_DEFAULT,
        scope="audience",
        facts=frozenset({"audience:vip", "consent"}),
    )


def test_targeted_last_variant_as_default_is_shown_without_being_evaluated() -> None:
    # No default marked and no untargeted variant: the last one is the default,
    # and it is shown when nothing else is eligible even though its condition is false.
    b = block(
        variant("vip", audiences=("vip",)),
        variant("mobile", condition={"device": "mobile"}),
    )
    decision = select_variant(b, context(attributes={"device": "desktop"}))
    assert (decision.variant_id, decision.reason) == ("mobile", REASON_DEFAULT)
    assert decision.scope == "audience"  # the default's condition was not read


@pytest.mark.parametrize(
    ("rule_id", "expected"),
    [
        pytest.param(None, "hero/vip", id="derived-block-slash-variant"),
        pytest.param("first-order-big-cart", "first-order-big-cart", id="explicit"),
    ],
)
def test_rule_id(rule_id: str | None, expected: str) -> None:
    b = block(variant("base"), variant("vip", audiences=("vip",), rule_id=rule_id))
    decision = select_variant(b, context(audiences={"vip"}))
    assert decision.rule_id == expected


def test_default_decision_has_no_rule_score_or_experiment() -> None:
    decision = select_variant(block(variant("base")), context())
    assert decision == Decision(block_id="hero", variant_id="base", reason=REASON_DEFAULT)
    assert (decision.rule_id, decision.score, decision.experiment, decision.bucket) == (
        None,
        None,
        None,
        None,
    )


def test_profile_unavailable_serves_the_default_with_fallback_reason() -> None:
    b = block(
        variant("base", default=True),
        variant("vip", audiences=("vip",), priority=10),
        variant("promo", priority=5),
    )
    ctx = context(audiences={"vip"}, profile_available=False)
    decision = select_variant(b, ctx)
    assert decision == Decision(
        block_id="hero",
        variant_id="base",
        reason=REASON_PROFILE_UNAVAILABLE,
        rule_id=None,
        # A degraded page is never shared, whatever the block reads.
        scope="individual",
    )
    assert REASON_PROFILE_UNAVAILABLE == "fallback:profile-unavailable"


# -- scope ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "ctx", "scope"),
    [
        pytest.param([variant("base")], context(), "public", id="single-variant"),
        pytest.param(
            [variant("base"), variant("promo", priority=1)], context(), "public", id="untargeted"
        ),
        pytest.param(
            [variant("base"), variant("seasonal", schedule=Schedule(start=NOW))],
            context(),
            "public",
            id="schedule-and-locale-are-public",
        ),
        pytest.param(
            [variant("base"), variant("vip", audiences=("vip",))],
            context(audiences={"vip"}),
            "audience",
            id="audience-matched",
        ),
        pytest.param(
            [variant("base"), variant("vip", audiences=("vip",))],
            context(),
            "audience",
            id="audience-not-matched-still-read",
        ),
        pytest.param(
            [variant("base"), variant("big", condition={"cart.value": {"$gt": 100}})],
            context(),
            "individual",
            id="condition-not-matched-still-read",
        ),
        pytest.param(
            [variant("base"), variant("m", condition={"device": "mobile"})],
            context(),
            "audience",
            id="condition-on-edge-facts-only",
        ),
        pytest.param(
            [variant("base"), variant("m", condition={"utm.campaign": "spring", "hour": 9})],
            context(),
            "public",
            id="condition-on-request-arguments-and-clock",
        ),
        pytest.param(
            [
                variant("base"),
                variant("m", condition={"$or": [{"device": "mobile"}, {"traits.orders": 3}]}),
            ],
            context(),
            "individual",
            id="any-profile-attribute-is-individual",
        ),
        pytest.param(
            [
                variant("base"),
                variant("big", condition={"cart.value": {"$gt": 100}}, priority=1),
                variant("vip", audiences=("vip",), priority=99),
            ],
            context(audiences={"vip"}),
            "individual",
            id="strictest-of-all-read-even-if-winner-is-audience",
        ),
        pytest.param(
            [variant("base", condition={"device": "mobile"}, default=True), variant("promo")],
            context(),
            "public",
            id="default-targeting-is-not-read",
        ),
    ],
)
def test_decision_scope(variants: list[Variant], ctx: TargetingContext, scope: Scope) -> None:
    assert select_variant(block(*variants), ctx).scope == scope


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        pytest.param([], "public", id="empty"),
        pytest.param(["public", "public"], "public", id="all-public"),
        pytest.param(["public", "audience", "public"], "audience", id="audience"),
        pytest.param(["individual", "public"], "individual", id="individual-first"),
        pytest.param(["audience", "individual", "audience"], "individual", id="individual-mid"),
    ],
)
def test_strictest(scopes: list[Scope], expected: Scope) -> None:
    assert strictest(scopes) == expected
    assert strictest(iter(scopes)) == expected


def test_page_decision_scope_is_the_strictest_decision() -> None:
    def decision(scope: Scope) -> Decision:
        return Decision(block_id="b", variant_id="v", reason=REASON_DEFAULT, scope=scope)

    assert PageDecision(decisions=(), personalized=True).scope == "public"
    assert PageDecision((decision("public"), decision("audience")), True).scope == "audience"
    assert PageDecision((decision("individual"), decision("audience")), True).scope == "individual"


# -- select_page ------------------------------------------------------------------


def make_page() -> Page:
    return Page(
        slug="home",
        title="Home",
        blocks=(
            block(variant("z-base"), variant("z-vip", audiences=("vip",)), block_id="zulu"),
            block(variant("a-base"), block_id="alpha"),
            block(
                variant("m-base"),
                variant("m-mobile", condition={"device": "mobile"}),
                block_id="mike",
            ),
        ),
    )


def test_select_page_keeps_page_order_and_decides_each_block() -> None:
    result = select_page(make_page(), context(audiences={"vip"}, attributes={"device": "mobile"}))
    assert [(d.block_id, d.variant_id, d.reason) for d in result.decisions] == [
        ("zulu", "z-vip", "audience:vip"),
        ("alpha", "a-base", REASON_DEFAULT),
        ("mike", "m-mobile", REASON_CONDITION),
    ]
    assert result.personalized is True
    # Audiences and a device condition: shareable among visitors with the same facts.
    assert result.scope == "audience"
    assert result.facts == {"audience:vip", "device", "consent"}


def test_select_page_without_profile_is_all_defaults_and_unpersonalized() -> None:
    ctx = context(audiences={"vip"}, attributes={"device": "mobile"}, profile_available=False)
    result = select_page(make_page(), ctx)
    assert [(d.block_id, d.variant_id, d.reason) for d in result.decisions] == [
        ("zulu", "z-base", REASON_PROFILE_UNAVAILABLE),
        ("alpha", "a-base", REASON_PROFILE_UNAVAILABLE),
        ("mike", "m-base", REASON_PROFILE_UNAVAILABLE),
    ]
    assert result.personalized is False
    assert all(d.rule_id is None for d in result.decisions)
