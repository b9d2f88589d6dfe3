"""`POST /v1/events` against the real database server: formats, keys, validation, limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.graphql_helpers import ADMIN_KEY, INGEST, PAGE_QUERY, PUBLISHABLE_KEY, graphql, variants

Mongo = AsyncMongoClient[dict[str, Any]]


def event(kind: str = "page_view", visitor: str = "v-1", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventId": uuid.uuid4().hex, "visitorId": visitor, **fields}


async def post(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", INGEST)
    return await client.post("/v1/events", json=body, headers=headers, **kwargs)


async def test_json_array_is_stored_and_applied(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    events = [
        event(properties={"category": "outdoor", "productId": "TENT-4S"}),
        event("add_to_cart", properties={"productId": "TENT-4S", "price": 120.0, "quantity": 2}),
    ]
    response = await post(client, events)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 2, "duplicates": 0, "dropped": 0, "rejected": [], "errors": [],
    }  # fmt: skip
    db = mongo[database_name]
    stored = await db["events"].find({"visitorId": "v-1"}).to_list()
    assert {doc["_id"] for doc in stored} == {e["eventId"] for e in events}
    profile = await db["profiles"].find_one({"_id": "v-1"})
    assert profile is not None
    assert {doc["commit"] for doc in stored} <= set(profile["commits"])
    assert await db["pending_commits"].count_documents({}) == 0
    profile = await db["profiles"].find_one({"_id": "v-1"})
    assert profile is not None
    assert profile["counts"] == {"page_view": 1, "add_to_cart": 1}
    assert profile["cart"]["items"] == 2
    assert profile["cart"]["value"] == 240.0
    assert profile["recentlyViewed"][0]["productId"] == "TENT-4S"


async def test_ndjson_and_text_plain_beacon_with_key_in_query_or_body(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    ndjson = "\n".join(json.dumps(event(visitor="nd")) for _ in range(3)) + "\n"
    response = await client.post(
        "/v1/events",
        content=ndjson,
        headers={"content-type": "application/x-ndjson", **INGEST},
    )
    assert response.json()["accepted"] == 3
    beacon = json.dumps([event(visitor="nd")])
    response = await client.post(
        f"/v1/events?key={PUBLISHABLE_KEY}", content=beacon, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    body = json.dumps({"writeKey": PUBLISHABLE_KEY, "events": [event(visitor="nd")]})
    response = await client.post(
        "/v1/events", content=body, headers={"content-type": "text/plain;charset=UTF-8"}
    )
    assert response.status_code == 200, response.text
    assert await mongo[database_name]["events"].count_documents({"visitorId": "nd"}) == 5


async def test_visitor_id_defaults_to_the_cookie(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    raw = {"type": "page_view", "eventId": uuid.uuid4().hex}
    response = await post(client, [raw], headers={**INGEST, "cookie": "tsr_vid=from-cookie"})
    assert response.json()["accepted"] == 1
    assert await mongo[database_name]["profiles"].find_one({"_id": "from-cookie"}) is not None


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        pytest.param({}, 401, "An API key is required", id="missing"),
        pytest.param({"Authorization": "Bearer nope"}, 401, "not valid", id="wrong"),
        pytest.param({"Authorization": "Basic abc"}, 401, "is required", id="not-bearer"),
    ],
)
async def test_keys_are_required(
    client: httpx.AsyncClient,
    mongo: Mongo,
    database_name: str,
    headers: dict,
    status: int,
    message: str,
) -> None:
    response = await post(client, [event(visitor="nokey")], headers=headers)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert await mongo[database_name]["events"].count_documents({}) == 0


async def test_admin_key_may_ingest(client: httpx.AsyncClient) -> None:
    response = await post(client, [event()], headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200


async def test_out_of_scope_key_is_403(client: httpx.AsyncClient, running_app: Any) -> None:
    from delivery.auth import KeyRing

    app = running_app[0]
    app.state.services.keys = KeyRing(preview=["preview-token"])
    response = await post(client, [event()], headers={"Authorization": "Bearer preview-token"})
    assert response.status_code == 403
    assert "preview key does not allow event ingestion" in response.json()["error"]


async def test_bad_events_are_named_and_good_ones_stored(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    good = event(visitor="mixed")
    batch = [
        good,
        {"type": "teleport", "eventId": "e-2", "visitorId": "mixed"},
        event("add_to_cart", visitor="mixed", properties={"productId": "X", "price": -1}),
        event(visitor="mixed", timestamp="yesterday", color="red"),
        "not an object",
        event("identify", visitor="mixed"),
    ]
    response = await post(client, batch)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [1, 2, 3, 4, 5]
    problems = {(e["index"], e["field"]): e["message"] for e in body["errors"]}
    assert "unknown type 'teleport'" in problems[(1, "type")]
    assert problems[(2, "properties.price")] == "must be a non-negative amount below 1e9"
    assert problems[(3, "timestamp")] == "is not an ISO 8601 date-time"
    assert problems[(3, "color")] == "unknown field"
    assert problems[(4, "")] == "each event must be a JSON object"
    assert problems[(5, "userId")] == "identify needs the userId"
    assert await mongo[database_name]["events"].count_documents({}) == 1


async def test_all_bad_is_400_and_bad_bodies_are_clear(client: httpx.AsyncClient) -> None:
    response = await post(client, [{"type": "page_view"}])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "eventId"
    response = await client.post(
        "/v1/events", content=b"{nope", headers={"content-type": "application/json", **INGEST}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert (await post(client, [])).status_code == 400


async def test_limits_answer_413(client: httpx.AsyncClient, running_app: Any) -> None:
    from delivery.services import IngestLimits

    running_app[0].state.services.ingest_limits = IngestLimits(max_body_bytes=2048, max_events=3)
    response = await post(client, [event() for _ in range(4)])
    assert response.status_code == 413
    assert "at most 3" in response.json()["error"]
    response = await post(client, [event(properties={"note": "x" * 1000}) for _ in range(3)])
    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["error"]


async def test_retried_batch_changes_nothing(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    batch = [event("purchase", visitor="retry", properties={"revenue": 50.0}) for _ in range(5)]
    first = await post(client, batch)
    assert first.json()["accepted"] == 5
    profile_before = await mongo[database_name]["profiles"].find_one({"_id": "retry"})
    again = await asyncio.gather(*(post(client, batch) for _ in range(3)))
    assert all(r.json()["duplicates"] == 5 and r.json()["accepted"] == 0 for r in again)
    profile = await mongo[database_name]["profiles"].find_one({"_id": "retry"})
    assert profile is not None
    assert profile_before is not None
    assert profile["traits"]["orders"] == 5
    assert profile["traits"]["ltv"] == 250.0
    assert profile["version"] == profile_before["version"]


async def test_an_event_id_taken_by_another_visitor_is_refused_not_dropped(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    # Anyone holding the public key could take a guessable id (an order number) first.
    taken = {"type": "purchase", "eventId": "order-1001", "properties": {"revenue": 1.0}}
    assert (await post(client, [{**taken, "visitorId": "attacker"}])).json()["accepted"] == 1
    mine = {**taken, "visitorId": "victim", "properties": {"revenue": 700.0}}
    response = await post(client, [mine, event(visitor="victim")])
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, [0])
    assert body["errors"][0]["field"] == "eventId"
    assert "already another visitor's event" in body["errors"][0]["message"]
    # Both in one request, so one group commit: the second is refused the same way.
    both = [{**taken, "eventId": "order-2002", "visitorId": v} for v in ("a-1", "a-2")]
    body = (await post(client, both)).json()
    assert (body["accepted"], body["rejected"]) == (1, [1])
    # The same visitor's retry is still a duplicate, as before.
    again = (await post(client, [{**taken, "visitorId": "attacker"}])).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])
    stored = await mongo[database_name]["events"].find_one({"_id": "order-1001"})
    assert stored is not None
    assert stored["visitorId"] == "attacker"


async def test_timestamps_are_clamped_and_the_original_kept(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str, clock: Any
) -> None:
    far = "2030-01-01T00:00:00Z"
    recent = (clock.now.replace(hour=11)).isoformat()
    response = await post(client, [event(timestamp=far), event(timestamp=recent)])
    assert response.json()["accepted"] == 2
    docs = await mongo[database_name]["events"].find({}).sort("timestamp", 1).to_list()
    assert docs[0]["timestamp"] == clock.now.replace(hour=11)
    assert "originalTimestamp" not in docs[0]
    assert docs[1]["timestamp"] == clock.now
    assert docs[1]["originalTimestamp"].year == 2030


async def test_browser_client_changes_its_audiences_on_the_next_page(
    client: httpx.AsyncClient,
) -> None:
    visitor = "browser-1"
    page = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor=visitor)
    assert variants(page.json()["data"]["page"])["home-hero"] == "welcome-offer"
    beacon = json.dumps([event(visitor=visitor) for _ in range(3)])
    response = await client.post(
        f"/v1/events?key={PUBLISHABLE_KEY}",
        content=beacon,
        headers={"content-type": "text/plain", "cookie": f"tsr_vid={visitor}"},
    )
    assert response.status_code == 200
    page = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor=visitor)
    assert variants(page.json()["data"]["page"])["home-hero"] == "welcome-back"


async def test_cors_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options("/v1/events")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["access-control-allow-headers"]
