"""Two-phase selection: priority tiers (`plan_page`), then scores and ε-greedy (`rank_page`)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from blocks.context import TargetingContext
from blocks.model import Block, Page, Variant
from blocks.selection import (
    FALLBACK_SCORE_ERROR,
    FALLBACK_SCORE_TIMEOUT,
    REASON_DEFAULT,
    REASON_EXPLORE,
    REASON_PRIORITY,
    REASON_PROFILE_UNAVAILABLE,
    REASON_SCORE,
    PagePlan,
    plan_page,
    rank_page,
    select_page,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def variant(variant_id: str, **meta: Any) -> Variant:
    return Variant(id=variant_id, fields={"name": variant_id}, **meta)


def page(*variants: Variant) -> Page:
    blocks = (
        Block(id="hero", type="hero", variants=(variant("default", default=True), *variants)),
    )
    return Page(slug="p", title="P", blocks=blocks)


def context(*audiences: str, available: bool = True) -> TargetingContext:
    return TargetingContext(
        attributes={},
        audiences=frozenset(audiences),
        now=NOW,
        locale="en-US",
        profile_available=available,
    )


TIERED = page(
    variant("low", priority=1),
    variant("a", priority=5, audiences=("fans",)),
    variant("b", priority=5),
    variant("c", priority=5),
)


def plan(*audiences: str) -> PagePlan:
    return plan_page(TIERED, context(*audiences))


def scores(**by_variant: float) -> dict[tuple[str, str], float]:
    return {("hero", key): value for key, value in by_variant.items()}


# -- plan -------------------------------------------------------------------------


def test_the_tier_is_the_eligible_variants_of_the_highest_priority_in_page_order() -> None:
    tier = plan("fans").blocks[0].tier
    assert [(c.variant.id, c.reason) for c in tier] == [
        ("a", "audience:fans"),
        ("b", REASON_PRIORITY),
        ("c", REASON_PRIORITY),
    ]
    assert [c.variant.id for c in plan().blocks[0].tier] == ["b", "c"]
    assert plan().blocks[0].scope == "audience"


def test_no_eligible_variant_or_no_profile_plans_the_default() -> None:
    only_targeted = page(variant("a", audiences=("fans",)))
    block = plan_page(only_targeted, context()).blocks[0]
    assert block.tier == ()
    assert block.default is not None
    assert block.default.reason == REASON_DEFAULT
    unavailable = plan_page(TIERED, context(available=False)).blocks[0]
    assert unavailable.default is not None
    assert unavailable.default.reason == REASON_PROFILE_UNAVAILABLE


# -- rank -------------------------------------------------------------------------


def test_without_scores_and_epsilon_zero_the_earlier_variant_wins_as_before() -> None:
    decision = rank_page(plan("fans"), None, epsilon=0.0, rng=None).decisions[0]
    assert (decision.variant_id, decision.reason, decision.propensity) == (
        "a",
        "audience:fans",
        1.0,
    )
    assert decision.candidates == ("a", "b", "c")
    assert decision.scope == "audience"
    assert select_page(TIERED, context("fans")).decisions[0].variant_id == "a"


def test_the_highest_score_wins_within_the_tier_never_outside_it() -> None:
    ranked = rank_page(
        plan(),
        scores(b=0.2, c=0.7, low=0.99),
        epsilon=0.0,
        rng=random.Random(1),
        model_version="v1",
    )
    decision = ranked.decisions[0]
    assert (decision.variant_id, decision.reason, decision.score) == ("c", REASON_SCORE, 0.7)
    assert decision.model_version == "v1"
    assert decision.propensity == 1.0
    assert decision.scope == "individual"
    assert ranked.scope == "individual"


def test_equal_scores_go_to_the_earlier_variant() -> None:
    decision = rank_page(
        plan("fans"), scores(a=0.5, b=0.5, c=0.5), epsilon=0.0, rng=None
    ).decisions[0]
    assert decision.variant_id == "a"


def test_epsilon_one_is_uniform_with_propensity_one_over_n() -> None:
    rng = random.Random(42)
    counts: Counter[str] = Counter()
    for _ in range(3000):
        decision = rank_page(
            plan("fans"), scores(a=0.9, b=0.1, c=0.1), epsilon=1.0, rng=rng
        ).decisions[0]
        assert decision.reason == REASON_EXPLORE
        assert decision.propensity == pytest.approx(1 / 3)
        assert decision.scope == "individual"
        counts[decision.variant_id] += 1
    assert set(counts) == {"a", "b", "c"}
    assert all(900 < count < 1100 for count in counts.values())


def test_propensity_is_the_policys_probability_of_the_choice() -> None:
    rng = random.Random(7)
    seen: dict[str, set[float]] = {}
    for _ in range(500):
        decision = rank_page(plan(), scores(b=0.1, c=0.8), epsilon=0.2, rng=rng).decisions[0]
        seen.setdefault(decision.variant_id, set()).add(round(decision.propensity, 9))
    assert seen["c"] == {round(0.8 + 0.2 / 2, 9)}
    assert seen["b"] == {round(0.2 / 2, 9)}


def test_exploration_without_a_model_still_randomizes_and_is_individual() -> None:
    rng = random.Random(3)
    picks = {
        rank_page(plan(), None, epsilon=1.0, rng=rng).decisions[0].variant_id for _ in range(50)
    }
    assert picks == {"b", "c"}


def test_a_failed_scoring_falls_back_to_priority_order_without_exploration() -> None:
    for fallback in (FALLBACK_SCORE_TIMEOUT, FALLBACK_SCORE_ERROR):
        for _ in range(20):
            decision = rank_page(
                plan(),
                None,
                epsilon=1.0,
                rng=random.Random(),
                model_version="v1",
                fallback=fallback,
            ).decisions[0]
            assert (decision.variant_id, decision.reason) == ("b", fallback)
            assert decision.propensity == 1.0
            assert decision.scope == "audience"  # what the eligibility read, as before


def test_a_tier_of_one_is_not_ranked() -> None:
    single = page(variant("a", priority=3), variant("b", priority=1))
    decision = rank_page(
        plan_page(single, context()), scores(a=0.1, b=0.9), epsilon=1.0, rng=random.Random(0)
    ).decisions[0]
    assert (decision.variant_id, decision.reason, decision.propensity) == ("a", "priority", 1.0)
    assert decision.score is None
    assert decision.scope == "public"
    assert decision.candidates == ("a",)


def test_epsilon_above_zero_needs_an_rng() -> None:
    with pytest.raises(ValueError, match="rng"):
        rank_page(plan(), None, epsilon=0.5, rng=None)
