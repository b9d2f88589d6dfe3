"""Attribution of clicks and conversions to exposures, stored on the exposure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from scoring.attribution import attribute_outcomes

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def _exposure(eid: str, visitor: str, variant: str, minutes: float, block: str = "hero") -> Any:
    return {
        "_id": eid,
        "visitorId": visitor,
        "page": "home",
        "locale": "en-US",
        "blockId": block,
        "variantId": variant,
        "reason": "model",
        "ruleId": None,
        "score": 0.1,
        "propensity": 0.5,
        "modelVersion": None,
        "candidates": [
            {"variantId": "a", "tags": [], "score": 0.1},
            {"variantId": "b", "tags": [], "score": 0.2},
        ],
        "features": {"device": "desktop"},
        "personalized": True,
        "ts": T0 + timedelta(minutes=minutes),
    }


def _event(eid: str, kind: str, visitor: str, minutes: float, **ids: str) -> Any:
    moment = T0 + timedelta(minutes=minutes)
    return {
        "_id": eid,
        "type": kind,
        "visitorId": visitor,
        "timestamp": moment,
        "receivedAt": moment,
        "context": {},
        "properties": {},
        **ids,
    }


async def _outcomes(db: Any) -> dict[str, Any]:
    return {doc["_id"]: doc.get("outcome") async for doc in db.exposures.find({})}


async def test_click_goes_to_the_latest_matching_exposure_within_the_window(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await db.exposures.insert_many(
        [
            _exposure("e1", "v1", "a", 0),
            _exposure("e2", "v1", "a", 5),  # latest before the click: gets it
            _exposure("e3", "v1", "b", 6),  # other variant
            _exposure("e4", "v1", "a", 20),  # after the click
            _exposure("e5", "v2", "a", 5),  # other visitor
            _exposure("e6", "v1", "a", 5, block="footer"),  # other block
            _exposure("e7", "v3", "a", 0),  # clicked too late (45 min)
        ]
    )
    await db.events.insert_many(
        [
            _event("c1", "click", "v1", 10, blockId="hero", variantId="a"),
            _event("c2", "click", "v3", 45, blockId="hero", variantId="a"),
            _event("c3", "click", "v2", 6),  # no ids: not a block click
        ]
    )
    result = await attribute_outcomes(db, since=T0, until=T0 + timedelta(hours=1))
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["click"]} == {"e2"}
    assert outcomes["e2"]["clickAt"] == T0 + timedelta(minutes=10)
    assert outcomes["e1"] == {
        "click": False,
        "clickAt": None,
        "conversion": False,
        "conversionAt": None,
    }
    assert result.exposures == 7
    assert result.clicked_exposures == 1
    assert result.updated == 7


async def test_conversion_goes_to_every_exposure_in_the_window_before_it(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await db.exposures.insert_many(
        [
            _exposure("e1", "v1", "a", 0),  # 40 minutes before: outside
            _exposure("e2", "v1", "b", 15),
            _exposure("e3", "v1", "a", 39, block="footer"),
            _exposure("e4", "v1", "a", 41),  # after the purchase
            _exposure("e5", "v2", "a", 30),  # other visitor
        ]
    )
    await db.events.insert_many(
        [
            _event("p1", "purchase", "v1", 40),
            _event("p2", "add_to_cart", "v2", 31),  # not a conversion by default
        ]
    )
    until = T0 + timedelta(hours=1)
    await attribute_outcomes(db, since=T0, until=until)
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e2", "e3"}
    assert outcomes["e2"]["conversionAt"] == T0 + timedelta(minutes=40)
    await attribute_outcomes(
        db, since=T0, until=until, conversion_types=("purchase", "add_to_cart")
    )
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e2", "e3", "e5"}
    # A shorter window excludes the exposure 25 minutes before the purchase.
    await attribute_outcomes(db, since=T0, until=until, window=timedelta(minutes=10))
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e3"}


async def test_attribution_is_idempotent(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await db.exposures.insert_many([_exposure("e1", "v1", "a", 0), _exposure("e2", "v1", "b", 1)])
    await db.events.insert_many(
        [
            _event("c1", "click", "v1", 2, blockId="hero", variantId="a"),
            _event("c2", "click", "v1", 3, blockId="hero", variantId="a"),
            _event("p1", "purchase", "v1", 4),
        ]
    )
    until = T0 + timedelta(hours=1)
    first = await attribute_outcomes(db, since=T0, until=until)
    before = await _outcomes(db)
    second = await attribute_outcomes(db, since=T0, until=until)
    assert first.updated == 2
    assert second.updated == 0
    assert await _outcomes(db) == before
    # Two clicks on one exposure: one click, at the first one's time.
    assert before["e1"]["click"] is True
    assert before["e1"]["clickAt"] == T0 + timedelta(minutes=2)
    assert second.clicked_exposures == 1
    assert second.converted_exposures == 2


async def test_nothing_to_attribute(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    result = await attribute_outcomes(mongo[database_name], since=T0, until=T0 + timedelta(hours=1))
    assert result.exposures == 0
    assert result.updated == 0


def test_window_edges_are_inclusive() -> None:
    from scoring.attribution import compute_outcomes

    exposures = [_exposure("e1", "v1", "a", 0), _exposure("e2", "v2", "a", 0)]
    events = [
        _event("c1", "click", "v1", 30, blockId="hero", variantId="a"),  # exactly 30 min
        _event("c2", "click", "v2", 30.02, blockId="hero", variantId="a"),  # 30 min 1.2 s
        _event("c3", "click", "v2", -1, blockId="hero", variantId="a"),  # before: never
        _event("p1", "purchase", "v1", 0),  # same instant as the exposure
    ]
    outcomes = compute_outcomes(exposures, events)
    assert outcomes["e1"]["click"] is True
    assert outcomes["e1"]["conversion"] is True
    assert outcomes["e2"]["click"] is False
    shorter = compute_outcomes(exposures, events, window=timedelta(minutes=29))
    assert shorter["e1"]["click"] is False
