"""Experiments in variant selection: one documented order, page-level allocation, sticky buckets."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from blocks.experiments import Allocation, assign_page, hash, sticky_key
from blocks.selection import Decision, PageDecision, plan_page, select_page
from tests.experiments.pages import NOW, context, cta, hero, page

RUNNING = {"key": "hero-test", "status": "running", "variations": ["default", "bold"]}


def decide(p: Any, visitor: str, allocation: Allocation | None = None, **kw: Any) -> PageDecision:
    ctx = context(visitor, **kw)
    return select_page(p, ctx, assign_page(p, ctx, allocation))


def hero_of(decision: PageDecision) -> Decision:
    return next(d for d in decision.decisions if d.block_id == "hero")


VISITORS = [f"visitor-{i}" for i in range(2000)]


def test_an_enrolled_visitor_sees_their_arm_and_the_decision_says_so() -> None:
    p = page(hero(RUNNING))
    seen = Counter(hero_of(decide(p, v)).variant_id for v in VISITORS)
    assert set(seen) == {"default", "bold"}
    assert 900 < seen["bold"] < 1100  # 50/50
    record = next(hero_of(decide(p, v)) for v in VISITORS if hero_of(decide(p, v)).variation == 1)
    assert record.reason == "experiment"
    assert (record.experiment, record.bucket, record.variation) == ("hero-test", "bold", 1)
    assert record.in_experiment
    # Cacheable per arm: never private because of the experiment.
    assert record.scope == "audience"
    # Nothing visitor-specific in it: the same record for everyone in the arm.
    others = [hero_of(decide(p, v)) for v in VISITORS[:50]]
    assert sum(other == record for other in others) == sum(o.variation == 1 for o in others)


def test_the_arm_is_growthbooks_hash_of_the_visitor() -> None:
    p = page(hero(RUNNING))
    for visitor in VISITORS[:200]:
        n = hash("hero-test", visitor, 2)
        assert n is not None
        expected = 0 if n < 0.5 else 1
        assert hero_of(decide(p, visitor)).variation == expected


def test_weights_split_the_traffic() -> None:
    p = page(hero({**RUNNING, "weights": [0.8, 0.2]}))
    seen = Counter(hero_of(decide(p, v)).variant_id for v in VISITORS)
    assert 330 < seen["bold"] < 470


def test_arm_weights_come_from_the_variants_weight_fields() -> None:
    block = hero(RUNNING)
    block["variants"][0]["weight"] = 3
    block["variants"][1]["weight"] = 1
    (experiment,) = page(block).experiments
    assert experiment.weights == (0.75, 0.25)


def test_visitors_outside_the_experiment_never_see_a_treatment() -> None:
    # Coverage 0: nobody enrolled; the treatment is untargeted but never shown.
    p = page(hero({**RUNNING, "coverage": 0}))
    decisions = [hero_of(decide(p, v)) for v in VISITORS[:300]]
    assert {d.variant_id for d in decisions} == {"default"}
    assert all(d.experiment is None and d.reason == "default" for d in decisions)
    # The outcome still depended on the experiment: audience scope, never public.
    assert {d.scope for d in decisions} == {"audience"}


def test_a_draft_enrolls_nobody_and_hides_its_treatments() -> None:
    p = page(hero({**RUNNING, "status": "draft"}))
    assert {hero_of(decide(p, v)).variant_id for v in VISITORS[:300]} == {"default"}


def test_the_time_window() -> None:
    later = {**RUNNING, "start": (NOW + timedelta(days=1)).isoformat()}
    assert {hero_of(decide(page(hero(later)), v)).variant_id for v in VISITORS[:200]} == {"default"}
    over = {**RUNNING, "end": (NOW - timedelta(seconds=1)).isoformat()}
    assert {hero_of(decide(page(hero(over)), v)).variant_id for v in VISITORS[:200]} == {"default"}
    inside = {**RUNNING, "start": (NOW - timedelta(days=1)).isoformat()}
    assert "bold" in {hero_of(decide(page(hero(inside)), v)).variant_id for v in VISITORS[:200]}


def test_a_stopped_experiment_ships_its_winner_or_returns_to_normal_selection() -> None:
    shipped = page(hero({**RUNNING, "status": "stopped", "winner": "bold"}))
    records = [hero_of(decide(shipped, v)) for v in VISITORS[:200]]
    assert {r.variant_id for r in records} == {"bold"}
    assert {r.reason for r in records} == {"experiment:winner"}
    assert not any(r.in_experiment for r in records)  # a winner is no exposure
    stopped = page(hero({**RUNNING, "status": "stopped"}))
    assert {hero_of(decide(stopped, v)).reason for v in VISITORS[:200]} == {"default"}


def test_experiments_come_before_audiences_unless_their_condition_says_otherwise() -> None:
    vip = frozenset({"high_value"})
    p = page(hero(RUNNING))
    assert {hero_of(decide(p, v, audiences=vip)).reason for v in VISITORS[:100]} == {"experiment"}
    guarded = page(hero({**RUNNING, "condition": {"audiences": {"$nin": ["high_value"]}}}))
    records = [hero_of(decide(guarded, v, audiences=vip)) for v in VISITORS[:100]]
    assert {(r.variant_id, r.reason) for r in records} == {("vip", "audience:high_value")}
    assert {hero_of(decide(guarded, v)).reason for v in VISITORS[:100]} == {"experiment"}


def test_no_profile_means_no_experiment() -> None:
    p = page(hero(RUNNING))
    records = [hero_of(decide(p, v, available=False)) for v in VISITORS[:100]]
    assert {(r.variant_id, r.experiment) for r in records} == {("default", None)}


def test_an_arm_outside_its_locale_leaves_the_block_to_normal_selection() -> None:
    block = hero(RUNNING)
    block["variants"][1]["locales"] = ["de-DE"]
    p = page(block)
    records = [hero_of(decide(p, v)) for v in VISITORS[:300]]
    assert {r.variant_id for r in records} == {"default"}
    assert {
        r.variant_id for r in (hero_of(decide(p, v, locale="de-DE")) for v in VISITORS[:300])
    } == {
        "default",
        "bold",
    }


def test_namespaces_keep_two_experiments_apart() -> None:
    first = {**RUNNING, "namespace": {"name": "home", "start": 0, "end": 0.5}}
    second = {
        "key": "cta-test",
        "status": "running",
        "variations": ["plain", "short", "loud"],
        "namespace": {"name": "home", "start": 0.5, "end": 1},
    }
    p = page(hero(first), cta(second))
    in_first = in_second = 0
    for visitor in VISITORS:
        experiments = {d.experiment for d in decide(p, visitor).decisions if d.in_experiment}
        assert experiments != {"hero-test", "cta-test"}
        in_first += "hero-test" in experiments
        in_second += "cta-test" in experiments
    assert 900 < in_first < 1100
    assert 900 < in_second < 1100
    assert in_first + in_second == len(VISITORS)


def test_the_global_holdout_sees_only_defaults() -> None:
    cta_test = {"key": "cta-test", "status": "running", "variations": ["plain", "short", "loud"]}
    p = page(hero(RUNNING), cta(cta_test))
    allocation = Allocation(holdout=0.1)
    held = 0
    for visitor in VISITORS:
        decision = decide(p, visitor, allocation)
        n = hash(allocation.holdout_seed, visitor, 2)
        assert n is not None
        if n < 0.1:
            held += 1
            assert [d.variant_id for d in decision.decisions] == ["default", "plain"]
            assert not any(d.experiment for d in decision.decisions)
        else:
            assert all(d.in_experiment for d in decision.decisions)
    assert 150 < held < 250


def test_an_experiment_holdout_keeps_seeing_the_control_after_a_winner_ships() -> None:
    held_out = {**RUNNING, "holdout": 0.2}
    records = [hero_of(decide(page(hero(held_out)), v)) for v in VISITORS]
    out = [r for r in records if r.experiment is None]
    assert 300 < len(out) < 500
    assert {r.variant_id for r in out} == {"default"}
    shipped = page(hero({**held_out, "status": "stopped", "winner": "bold"}))
    after = Counter(hero_of(decide(shipped, v)).variant_id for v in VISITORS)
    assert after["default"] == len(out)


def test_a_factorial_experiment_varies_two_blocks_together() -> None:
    definition = {
        "key": "combo",
        "status": "running",
        "factors": {"hero": ["default", "bold"], "cta": ["plain", "short"]},
    }
    p = page(hero(definition), cta())
    (experiment,) = p.experiments
    assert experiment.variation_keys == (
        "default+plain",
        "default+short",
        "bold+plain",
        "bold+short",
    )
    seen: Counter[tuple[str, str]] = Counter()
    for visitor in VISITORS:
        records = {d.block_id: d for d in decide(p, visitor).decisions}
        assert records["hero"].variation == records["cta"].variation
        assert records["hero"].bucket == f"{records['hero'].variant_id}+{records['cta'].variant_id}"
        seen[records["hero"].variant_id, records["cta"].variant_id] += 1
    assert len(seen) == 4
    assert min(seen.values()) > 400


def test_a_listed_multivariate_experiment_shows_only_its_combinations() -> None:
    definition = {
        "key": "pairs",
        "status": "running",
        "factors": {"hero": ["default", "bold"], "cta": ["plain", "short", "loud"]},
        "design": "listed",
        "combinations": [{"hero": "default", "cta": "plain"}, {"hero": "bold", "cta": "loud"}],
    }
    p = page(hero(definition), cta())
    pairs = {tuple(d.variant_id for d in decide(p, v).decisions) for v in VISITORS[:400]}
    assert pairs == {("default", "plain"), ("bold", "loud")}


def _sticky(decision_context: Any, p: Any) -> Any:
    return assign_page(p, decision_context)


def test_sticky_buckets_keep_the_arm_when_weights_change() -> None:
    p = page(hero(RUNNING))
    moved = page(hero({**RUNNING, "weights": [0.01, 0.99]}))
    kept = changed = 0
    for visitor in VISITORS[:400]:
        first = assign_page(p, context(visitor))
        (doc,) = first.sticky_docs
        profile = {"_id": visitor, "traits": {}, "stickyBuckets": {"x": doc}}
        before = first.results[0].variation
        after_sticky = assign_page(moved, context(visitor, profile=profile)).results[0]
        after_fresh = assign_page(moved, context(visitor)).results[0]
        assert after_sticky.variation == before
        assert after_sticky.sticky_used
        kept += 1
        changed += after_fresh.variation != before
    assert kept == 400
    assert changed > 150


def test_bumping_the_bucket_version_reassigns() -> None:
    p = page(hero(RUNNING))
    bumped = page(hero({**RUNNING, "bucketVersion": 1, "weights": [0.01, 0.99]}))
    visitor = next(v for v in VISITORS if assign_page(p, context(v)).results[0].variation == 0)
    (doc,) = assign_page(p, context(visitor)).sticky_docs
    profile = {"_id": visitor, "traits": {}, "stickyBuckets": {"x": doc}}
    result = assign_page(bumped, context(visitor, profile=profile))
    assert not result.results[0].sticky_used
    (saved,) = result.sticky_docs
    assert saved["assignments"] == {"hero-test__0": "default", "hero-test__1": "bold"}


def test_a_visitor_keeps_their_arm_once_their_user_id_is_known() -> None:
    p = page(hero(RUNNING))
    moved = 0
    for visitor in VISITORS[:200]:
        anonymous = assign_page(p, context(visitor))
        result = anonymous.results[0]
        assert result.hash_attribute == "visitorId"  # the fallback while anonymous
        (doc,) = anonymous.sticky_docs
        user = f"user-{visitor}"
        known = {
            "_id": visitor,
            "traits": {"orders": 1},
            "userId": user,
            "stickyBuckets": {"x": doc},
        }
        later = assign_page(p, context(visitor, profile=known))
        assert later.results[0].hash_attribute == "userId"
        assert later.results[0].variation == result.variation
        assert later.results[0].sticky_used
        (saved,) = later.sticky_docs
        assert saved["attributeName"] == "userId"
        assert saved["attributeValue"] == user
        n = hash("hero-test", user, 2)
        moved += (0 if n is not None and n < 0.5 else 1) != result.variation
    assert moved > 50  # hashing the user id alone would have moved these visitors


def test_sticky_documents_key_like_growthbook() -> None:
    result = assign_page(page(hero(RUNNING)), context("v-1"))
    (doc,) = result.sticky_docs
    assert sticky_key(doc["attributeName"], doc["attributeValue"]) == "visitorId||v-1"


def test_plan_page_runs_the_experiments_itself_by_default() -> None:
    p = page(hero(RUNNING))
    plan = plan_page(p, context("visitor-7"))
    (block,) = plan.blocks
    assert block.default is not None
    assert block.default.experiment == "hero-test"


def test_an_invalid_definition_is_dropped_but_its_treatment_stays_hidden() -> None:
    from blocks.parse import parse_page

    block = hero({**RUNNING, "weights": [0.9, 0.3]})
    parsed = parse_page({"slug": "p", "title": "P", "blocks": [block]})
    assert [p.path for p in parsed.problems] == ["blocks[0].variants[0].experiment.weights"]
    assert parsed.page.experiments == ()
    assert {hero_of(select_page(parsed.page, context(v))).variant_id for v in VISITORS[:100]} == {
        "default"
    }


def test_a_factorial_explosion_is_refused_before_it_is_listed() -> None:
    from blocks.parse import parse_page

    blocks = [hero()] + [
        {
            "id": f"b{i}",
            "type": "banner",
            "variants": [
                {"id": "a", "default": True, "fields": {"text": "a"}},
                {"id": "b", "fields": {"text": "b"}},
            ],
        }
        for i in range(40)
    ]
    factors = {f"b{i}": ["a", "b"] for i in range(40)}
    blocks[0]["variants"][0]["experiment"] = {"key": "huge", "factors": factors}
    parsed = parse_page({"slug": "p", "title": "P", "blocks": blocks})
    (problem,) = parsed.problems
    assert problem.message == "1099511627776 combinations; at most 64"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param({"variations": ["default", "nope"]}, "variations[1]", id="unknown-variant"),
        pytest.param({"variations": ["default", "default"]}, "variations[1]", id="twice"),
        pytest.param({"weights": [1.0]}, "weights", id="weights-length"),
        pytest.param({"condition": {"x": {"$inn": [1]}}}, "condition.x.$inn", id="condition"),
        pytest.param({"winner": "nope"}, "winner", id="winner"),
        pytest.param({"key": "has space"}, "key", id="key"),
        pytest.param({"factors": {"hero": ["default", "bold"]}}, "(root)", id="both-forms"),
        pytest.param(
            {"variations": None, "factors": {"nowhere": ["a", "b"]}},
            "factors.nowhere",
            id="unknown-block",
        ),
        pytest.param({"metrics": ["clicks"]}, "metrics", id="metric"),
        pytest.param(
            {"namespace": {"name": "n", "start": 0.5, "end": 0.2}}, "namespace.end", id="namespace"
        ),
        pytest.param({"start": "2026-12-01", "end": "2026-11-01"}, "end", id="window"),
        pytest.param({"minBucketVersion": 2}, "minBucketVersion", id="min-version"),
    ],
)
def test_invalid_definitions_name_the_field(change: dict[str, Any], path: str) -> None:
    from blocks.parse import parse_page

    definition = {k: v for k, v in {**RUNNING, **change}.items() if v is not None}
    parsed = parse_page({"slug": "p", "title": "P", "blocks": [hero(definition)]})
    assert parsed.page.experiments == ()
    where = "blocks[0].variants[0].experiment"
    paths = [problem.path for problem in parsed.problems]
    assert (where if path == "(root)" else f"{where}.{path}") in paths, paths
