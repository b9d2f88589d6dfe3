"""Attribution of clicks and conversions to exposures, stored on the exposure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from scoring.attribution import attribute_outcomes, compute_outcomes
from scoring.exposures import block_exposures

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def _page(pid: str, visitor: str, minutes: float, *arms: tuple[str, str]) -> Any:
    """A page exposure document; `arms` are its blocks' (blockId, variantId)."""
    return {
        "_id": pid,
        "visitorId": visitor,
        "page": "home",
        "locale": "en-US",
        "ts": T0 + timedelta(minutes=minutes),
        "personalized": True,
        "modelVersion": None,
        "features": {"device": "desktop"},
        "blocks": [
            {
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
            }
            for block, variant in arms
        ],
    }


def _exposure(eid: str, visitor: str, variant: str, minutes: float, block: str = "hero") -> Any:
    """A page view showing one block: its block exposure is `<eid>:0`."""
    return _page(eid, visitor, minutes, (block, variant))


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
    """Block exposure id ("<page>:<index>") → its stored outcome."""
    return {
        record["_id"]: record.get("outcome")
        async for doc in db.exposures.find({})
        for record in block_exposures(doc)
    }


async def test_click_goes_to_the_latest_matching_exposure_within_the_window(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await db.exposures.insert_many(
        [
            _exposure("e1", "v1", "a", 0),
            # e2:0 is the latest before the click and gets it; e2:1 is another block.
            _page("e2", "v1", 5, ("hero", "a"), ("footer", "a")),
            _exposure("e3", "v1", "b", 6),  # other variant
            _exposure("e4", "v1", "a", 20),  # after the click
            _exposure("e5", "v2", "a", 5),  # other visitor
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
    assert {k for k, o in outcomes.items() if o["click"]} == {"e2:0"}
    assert outcomes["e2:0"]["clickAt"] == T0 + timedelta(minutes=10)
    assert outcomes["e1:0"] == {
        "click": False,
        "clickAt": None,
        "conversion": False,
        "conversionAt": None,
    }
    assert result.exposures == 7
    assert result.clicked_exposures == 1
    assert result.updated == 7
    assert (result.pages, result.pages_updated) == (6, 6)


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
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e2:0", "e3:0"}
    assert outcomes["e2:0"]["conversionAt"] == T0 + timedelta(minutes=40)
    await attribute_outcomes(
        db, since=T0, until=until, conversion_types=("purchase", "add_to_cart")
    )
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e2:0", "e3:0", "e5:0"}
    # A shorter window excludes the exposure 25 minutes before the purchase.
    await attribute_outcomes(db, since=T0, until=until, window=timedelta(minutes=10))
    outcomes = await _outcomes(db)
    assert {k for k, o in outcomes.items() if o["conversion"]} == {"e3:0"}


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
    assert before["e1:0"]["click"] is True
    assert before["e1:0"]["clickAt"] == T0 + timedelta(minutes=2)
    assert second.clicked_exposures == 1
    assert second.converted_exposures == 2


async def test_nothing_to_attribute(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    result = await attribute_outcomes(mongo[database_name], since=T0, until=T0 + timedelta(hours=1))
    assert result.exposures == 0
    assert result.updated == 0


def test_window_edges_are_inclusive() -> None:
    pages = [_exposure("e1", "v1", "a", 0), _exposure("e2", "v2", "a", 0)]
    exposures = [record for page in pages for record in block_exposures(page)]
    events = [
        _event("c1", "click", "v1", 30, blockId="hero", variantId="a"),  # exactly 30 min
        _event("c2", "click", "v2", 30.02, blockId="hero", variantId="a"),  # 30 min 1.2 s
        _event("c3", "click", "v2", -1, blockId="hero", variantId="a"),  # before: never
        _event("p1", "purchase", "v1", 0),  # same instant as the exposure
    ]
    outcomes = compute_outcomes(exposures, events)
    assert outcomes["e1:0"]["click"] is True
    assert outcomes["e1:0"]["conversion"] is True
    assert outcomes["e2:0"]["click"] is False
    shorter = compute_outcomes(exposures, events, window=timedelta(minutes=29))
    assert shorter["e1:0"]["click"] is False


async def test_outcomes_are_written_per_block_into_the_page_document(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    arms = (("hero", "a"), ("banner", "b"), ("footer", "a"))
    await db.exposures.insert_one(_page("p1", "v1", 0, *arms))
    await db.events.insert_one(_event("c1", "click", "v1", 1, blockId="footer", variantId="a"))
    until = T0 + timedelta(hours=1)
    first = await attribute_outcomes(db, since=T0, until=until)
    # Three block outcomes, one update of the one page document.
    assert (first.exposures, first.updated, first.pages, first.pages_updated) == (3, 3, 1, 1)
    stored = await db.exposures.find_one({"_id": "p1"})
    assert stored is not None
    assert "outcome" not in stored
    assert [(b["blockId"], b["variantId"]) for b in stored["blocks"]] == list(arms)
    assert [b["outcome"]["click"] for b in stored["blocks"]] == [False, False, True]
    assert stored["blocks"][2]["outcome"]["clickAt"] == T0 + timedelta(minutes=1)
    assert len(stored["blocks"][0]["candidates"]) == 2  # the rest of the block is untouched
    # A later purchase changes every block's outcome: still one update.
    await db.events.insert_one(_event("p1", "purchase", "v1", 2))
    second = await attribute_outcomes(db, since=T0, until=until)
    assert (second.updated, second.pages_updated) == (3, 1)
    again = await attribute_outcomes(db, since=T0, until=until)
    assert (again.updated, again.pages_updated) == (0, 0)


async def test_a_click_past_until_goes_to_its_own_exposure_not_an_older_one(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await db.exposures.insert_many(
        [
            _exposure("old", "v1", "a", 50),  # inside [since, until]
            _exposure("new", "v1", "a", 65),  # past until, before the click
        ]
    )
    await db.events.insert_one(_event("c1", "click", "v1", 70, blockId="hero", variantId="a"))
    until = T0 + timedelta(hours=1)
    result = await attribute_outcomes(db, since=T0, until=until)
    outcomes = await _outcomes(db)
    # The click is the later exposure's: the older one must not take it now ...
    assert outcomes["old:0"]["click"] is False
    # ... and the later one, outside this run's range, is not written yet.
    assert outcomes["new:0"] is None
    assert (result.exposures, result.pages) == (1, 1)
    await attribute_outcomes(db, since=until, until=until + timedelta(hours=1))
    outcomes = await _outcomes(db)
    assert (outcomes["old:0"]["click"], outcomes["new:0"]["click"]) == (False, True)
