"""Finding 5 of issue 10: no stream of events grows a profile without bound.

The attack: requests of 500 events, each naming a new category and 20 new tags.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import bson
import httpx
from pymongo import AsyncMongoClient

from profiles.traits import MAX_PROFILE_BYTES, TOP_INTERESTS, TOP_TAGS
from tests.graphql_helpers import INGEST, PAGE_QUERY, graphql, reasons

Mongo = AsyncMongoClient[dict[str, Any]]
VISITOR_QUERY = "{ visitor { audiences traits } }"
ROUNDS = 6
# Generous: a bounded profile is applied in well under a second even on a busy machine;
# the unbounded one took 5 s per request once it had grown.
SECONDS_PER_REQUEST = 10.0


def event(kind: str, visitor: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "eventId": uuid.uuid4().hex,
        "visitorId": visitor,
        "properties": properties,
    }


def attack(visitor: str, round_: int) -> list[dict[str, Any]]:
    return [
        event(
            "page_view",
            visitor,
            category=f"r{round_}-category-{i}",
            tags=[f"r{round_}-e{i}-tag-{j}" for j in range(20)],
        )
        for i in range(500)
    ]


async def test_a_profile_stays_bounded_fast_and_personalized_under_the_attack(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    visitor = "hammered"
    before = [event("page_view", visitor, category="outdoor", tags=["tent"]) for _ in range(5)]
    before.append(event("purchase", visitor, revenue=650.0))
    response = await client.post("/v1/events", json=before, headers=INGEST)
    assert response.json()["accepted"] == 6
    db = mongo[database_name]
    sizes = []
    for round_ in range(ROUNDS):
        started = time.perf_counter()
        response = await client.post("/v1/events", json=attack(visitor, round_), headers=INGEST)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 500
        assert elapsed < SECONDS_PER_REQUEST, f"round {round_} took {elapsed:.1f} s"
        profile = await db["profiles"].find_one({"_id": visitor})
        assert profile is not None
        sizes.append(len(bson.encode(profile)))
    assert max(sizes) <= MAX_PROFILE_BYTES, sizes
    assert len(profile["interests"]) == TOP_INTERESTS
    assert len(profile["tags"]) == TOP_TAGS
    # What the visitor really cares about outranks a flood of one-off names.
    assert profile["interests"]["outdoor"]["v"] == 5.0
    assert profile["tags"]["tent"]["v"] == 5.0
    assert profile["counts"]["page_view"] == 5 + ROUNDS * 500
    assert await db["events"].count_documents({"visitorId": visitor}) == 6 + ROUNDS * 500

    page = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor=visitor)
    data = page.json()["data"]["page"]
    assert data["personalized"] is True
    assert reasons(data)["home-hero"] == "audience:high_value"
    visitor_view = await graphql(client, VISITOR_QUERY, visitor=visitor)
    audiences = visitor_view.json()["data"]["visitor"]["audiences"]
    assert {"high_value", "outdoor_fan", "returning"} <= set(audiences)
