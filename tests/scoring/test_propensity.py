"""The purchase-propensity model: trained from profiles, written into them, targetable."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from blocks.audiences import Audience, AudienceSet
from blocks.context import RequestFacts, build_context
from scoring.errors import NotEnoughData
from scoring.propensity import (
    profile_features,
    purchased,
    score_profiles,
    train_propensity_model,
)
from scoring.registry import PROPENSITY_MODEL, ModelRegistry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _profiles(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        engaged = rng.random()
        carts = int(rng.random() < engaged) * rng.randint(1, 4)
        views = int(2 + 40 * engaged * rng.random())
        # Buying is likelier for engaged visitors with cart activity.
        buyer = rng.random() < 1 / (1 + math.exp(-(4 * engaged + carts - 3.5)))
        out.append(
            {
                "_id": f"p-{i:04d}",
                "version": 3,
                "traits": {
                    "pageViews": views,
                    "sessions": 1 + views // 5,
                    "orders": 1 if buyer else 0,
                    "ltv": 90.0 if buyer else 0,
                    "device": rng.choice(["mobile", "desktop"]),
                },
                "counts": {
                    "page_view": views,
                    "add_to_cart": carts,
                    **({"purchase": 1} if buyer else {}),
                },
                "cart": {"items": 0, "value": 0},
                "interests": {"outdoor": {"v": 3 * engaged, "t": NOW}},
            }
        )
    return out


def test_features_do_not_leak_the_label() -> None:
    profile = _profiles(1)[0]
    profile["traits"].update(orders=5, ltv=900.0, lastOrderAt=NOW)
    profile["counts"]["purchase"] = 5
    row = profile_features(profile)
    assert not [name for name in row if "order" in name or "ltv" in name or "purchase" in name]
    assert purchased(profile)
    assert not purchased({"traits": {"orders": 0}})


async def test_scores_are_written_into_profiles_and_usable_in_a_condition(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    profiles = _profiles(400)
    await db.profiles.insert_many([*profiles, {"_id": "stub", "mergedInto": "p-0000"}])
    registry = ModelRegistry(db, b"k")
    estimator, report = await train_propensity_model(db, registry, activate=True)
    assert report.auc > 0.7
    assert await registry.active_version(PROPENSITY_MODEL) == report.version
    count, bands = await score_profiles(db, estimator)
    assert count == 400
    assert sum(bands.values()) == 400
    stored = {doc["_id"]: doc async for doc in db.profiles.find({})}
    assert "scores" not in stored["stub"]
    scores = [doc["scores"]["purchasePropensity"] for key, doc in stored.items() if key != "stub"]
    assert all(0.0 <= s <= 1.0 and round(s, 4) == s for s in scores)
    assert stored["p-0001"]["version"] == 4  # a concurrent ingest would retry
    # Buyers score higher on average than non-buyers.
    buyers = [d["scores"]["purchasePropensity"] for d in stored.values() if purchased(d)]
    others = [
        d["scores"]["purchasePropensity"]
        for k, d in stored.items()
        if k != "stub" and not purchased(d)
    ]
    assert sum(buyers) / len(buyers) > sum(others) / len(others) + 0.1
    # An audience on the score matches exactly the profiles scored >= 0.5.
    likely = Audience.from_document(
        {"name": "likely_buyer", "condition": {"scores.purchasePropensity": {"$gte": 0.5}}}
    )
    matched = 0
    for key, doc in list(stored.items())[:100]:
        if key == "stub":
            continue
        context = build_context(
            request=RequestFacts(visitor_id=key),
            profile=doc,
            audiences=AudienceSet([likely]),
            now=NOW,
            locale=None,
        )
        expected = doc["scores"]["purchasePropensity"] >= 0.5
        assert ("likely_buyer" in context.audiences) is expected
        matched += expected
    assert 0 < matched < 99
    assert bands[">=0.7"] == sum(1 for s in scores if s >= 0.7)


async def test_too_few_buyers_is_a_clear_error(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    profiles = _profiles(100)
    for doc in profiles:
        doc["traits"]["orders"] = 0
        doc["counts"].pop("purchase", None)
    await db.profiles.insert_many(profiles)
    with pytest.raises(NotEnoughData, match="0 buyers"):
        await train_propensity_model(db, ModelRegistry(db, b"k"))


def test_non_finite_values_become_absent_or_zero() -> None:
    profile = {
        "traits": {"pageViews": math.inf, "sessions": math.nan, "device": "mobile"},
        "counts": {"page_view": -math.inf, "click": 2},
        "cart": {"items": math.nan, "value": math.inf},
        "interests": {"nan": {"v": math.nan}, "inf": math.inf, "ok": 1.0},
    }
    row = profile_features(profile)
    assert all(math.isfinite(value) for value in row.values())
    assert row["traits.pageViews"] == row["traits.sessions"] == row["cart.value"] == 0.0
    assert row["counts.click"] == round(math.log1p(2), 4)
    assert [name for name in row if name.startswith("interest.")] == ["interest.ok"]


async def test_non_finite_profile_values_do_not_stop_training_or_scoring(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    profiles = _profiles(200)
    for doc in profiles[::7]:
        doc["traits"]["pageViews"] = math.inf
        doc["counts"]["page_view"] = math.nan
        doc["interests"] = {"outdoor": {"v": math.inf}, "indoor": math.nan}
    await db.profiles.insert_many(profiles)
    estimator, report = await train_propensity_model(db, ModelRegistry(db, b"k"))
    assert math.isfinite(report.auc)
    count, _ = await score_profiles(db, estimator)
    assert count == 200
