"""Profiles against the real database server: concurrency, identity, consent, GDPR, indexes."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from starlette.applications import Starlette

from tests.graphql_helpers import ADMIN, INGEST, PAGE_QUERY, graphql, reasons, variants

Mongo = AsyncMongoClient[dict[str, Any]]

EXPORT = "query($id: ID!) { exportVisitor(id: $id) }"
ERASE = "mutation($id: ID!) { eraseVisitor(id: $id) { erased deleted auditId } }"
TRACK_BATCH = """
mutation($events: [EventInput!]!) {
  trackBatch(events: $events) {
    accepted duplicates dropped rejected errors { index field message }
  }
}
"""


def event(kind: str = "page_view", visitor: str = "v", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventId": uuid.uuid4().hex, "visitorId": visitor, **fields}


async def post(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    """Post as a server would (admin key): `identify` needs one."""
    response = await client.post("/v1/events", json=events, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response


async def test_hundred_concurrent_updates_to_one_profile_are_exact(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str, running_app: Any
) -> None:
    ingestor = running_app[0].state.services.ingestor
    commits_before = ingestor.commits
    one = {"productId": "A", "price": 2.5, "category": "outdoor"}
    responses = await asyncio.gather(
        *(post(client, [event("add_to_cart", "hot", properties=one)]) for _ in range(100))
    )
    assert sum(r.json()["accepted"] for r in responses) == 100
    # Group commit: concurrent requests shared commits.
    assert ingestor.commits - commits_before < 50
    profile = await mongo[database_name]["profiles"].find_one({"_id": "hot"})
    assert profile is not None
    assert profile["counts"]["add_to_cart"] == 100
    assert profile["cart"]["items"] == 100
    assert profile["cart"]["value"] == 250.0
    assert profile["interests"]["outdoor"]["v"] == 100


async def test_graphql_track_batch_needs_a_key_and_reports_per_event(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    events = [
        {"type": "PAGE_VIEW", "visitorId": "gq", "eventId": "gq-1", "category": "tv"},
        {"type": "PURCHASE", "visitorId": "gq", "revenue": -3},
    ]
    denied = await graphql(client, TRACK_BATCH, {"events": events})
    assert denied.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await graphql(client, TRACK_BATCH, {"events": events}, headers=INGEST)
    result = response.json()["data"]["trackBatch"]
    assert result["accepted"] == 1
    assert result["rejected"] == [1]
    assert result["errors"] == [
        {"index": 1, "field": "revenue", "message": "must be a non-negative amount below 1e9"}
    ]
    again = await graphql(client, TRACK_BATCH, {"events": events[:1]}, headers=INGEST)
    assert again.json()["data"]["trackBatch"]["duplicates"] == 1
    assert await mongo[database_name]["events"].count_documents({"visitorId": "gq"}) == 1


async def test_identify_merges_the_anonymous_profile_into_the_known_one(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    # The user's first device.
    await post(client, [event(visitor="phone"), event("identify", "phone", userId="alice")])
    await post(client, [event("purchase", "phone", properties={"revenue": 300.0})])
    # A second, anonymous device browses, then logs in.
    await post(client, [event(visitor="laptop", properties={"category": "outdoor"})] * 1)
    await post(client, [event("purchase", "laptop", properties={"revenue": 250.0})])
    await post(client, [event("identify", "laptop", userId="alice")])
    db = mongo[database_name]
    known = await db["profiles"].find_one({"_id": "phone"})
    assert known is not None
    assert known["userId"] == "alice"
    assert known["traits"]["orders"] == 2
    assert known["traits"]["ltv"] == 550.0
    assert known["counts"]["identify"] == 2
    assert known["aliases"] == ["laptop"]
    assert await db["profiles"].find_one({"_id": "laptop"}) == {
        "_id": "laptop", "mergedInto": "phone", "mergedAt": known["updatedAt"],
        "version": await _stub_version(db),
    }  # fmt: skip
    # Later events from either id reach the same profile, and pages read it.
    await post(client, [event(visitor="laptop"), event(visitor="phone")])
    known = await db["profiles"].find_one({"_id": "phone"})
    assert known is not None
    assert known["traits"]["pageViews"] == 4
    page = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="laptop")
    assert variants(page.json()["data"]["page"])["home-hero"] == "vip-early-access"


async def _stub_version(db: Any) -> int:
    stub = await db["profiles"].find_one({"_id": "laptop"})
    return int(stub["version"])


async def test_a_publishable_key_cannot_identify(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    # Otherwise a browser could link its visitor to any user and read their profile.
    batch = [event(visitor="intruder"), event("identify", "intruder", userId="alice")]
    response = await client.post("/v1/events", json=batch, headers=INGEST)
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, [1])
    assert body["errors"][0]["field"] == "type"
    assert body["errors"][0]["message"].startswith("identify needs an admin key")
    track = await graphql(
        client,
        TRACK_BATCH,
        {"events": [{"type": "IDENTIFY", "visitorId": "intruder", "userId": "alice"}]},
        headers=INGEST,
    )
    assert track.json()["data"]["trackBatch"]["rejected"] == [0]
    assert await mongo[database_name]["identities"].find_one({"_id": "alice"}) is None


async def test_concurrent_merges_are_safe(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    devices = [f"dev-{i}" for i in range(8)]
    for device in devices:
        await post(
            client, [event(visitor=device), event("purchase", device, properties={"revenue": 10.0})]
        )
    await asyncio.gather(
        *(
            post(client, [event("identify", device, userId="bob")])
            for device in devices
            for _ in range(2)  # each identify sent twice (distinct event ids)
        )
    )
    db = mongo[database_name]
    identity = await db["identities"].find_one({"_id": "bob"})
    assert identity is not None
    owner = identity["profileId"]
    profile = await db["profiles"].find_one({"_id": owner})
    assert profile is not None
    assert profile["traits"]["orders"] == 8
    assert profile["traits"]["ltv"] == 80.0
    assert profile["counts"]["page_view"] == 8
    assert profile["counts"]["identify"] == 16
    assert sorted(profile["aliases"]) == sorted(d for d in devices if d != owner)
    stubs = await db["profiles"].count_documents({"mergedInto": owner})
    assert stubs == len(devices) - 1


async def test_without_analytics_consent_events_are_dropped_and_changes_audited(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    await post(client, [event(visitor="shy")])
    response = await post(
        client,
        [
            event("consent", "shy", properties={"analytics": False, "source": "banner"}),
            event(visitor="shy"),
            event(visitor="shy"),
        ],
    )
    assert response.json() == {
        "accepted": 1, "duplicates": 0, "dropped": 2, "rejected": [], "errors": [],
    }  # fmt: skip
    db = mongo[database_name]
    assert await db["events"].count_documents({"visitorId": "shy"}) == 1
    log = await db["consent_log"].find({"visitorId": "shy"}).to_list()
    assert [(r["analytics"], r["source"]) for r in log] == [(False, "banner")]
    profile = await db["profiles"].find_one({"_id": "shy"})
    assert profile is not None
    assert profile["consent"]["analytics"] is False
    assert profile["counts"]["page_view"] == 1


async def test_without_personalization_consent_pages_render_defaults(
    client: httpx.AsyncClient,
) -> None:
    await post(client, [event("consent", "demo-vip", properties={"personalization": False})])
    page = (await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="demo-vip")).json()
    assert page["data"]["page"]["personalized"] is False
    assert variants(page["data"]["page"])["home-hero"] == "default"
    assert set(reasons(page["data"]["page"]).values()) == {"fallback:no-consent"}
    await post(client, [event("consent", "demo-vip", properties={"personalization": True})])
    page = (await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="demo-vip")).json()
    assert variants(page["data"]["page"])["home-hero"] == "vip-early-access"


async def test_export_and_erase_cover_every_collection(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    await post(client, [event(visitor="gdpr-a"), event("identify", "gdpr-a", userId="carol")])
    await post(client, [event(visitor="gdpr-b", properties={"category": "tv"})])
    await post(client, [event("identify", "gdpr-b", userId="carol")])
    await post(client, [event("consent", "gdpr-b", properties={"personalization": False})])
    await post(client, [event(visitor="bystander")])
    db = mongo[database_name]
    # One page view of gdpr-b (two blocks in one document), one of a bystander.
    blocks = [
        {"blockId": "home-hero", "variantId": "default", "candidates": []},
        {"blockId": "home-banner", "variantId": "default", "candidates": []},
    ]
    await db["exposures"].insert_many(
        [
            {"_id": "x-gdpr", "visitorId": "gdpr-b", "page": "home", "blocks": blocks},
            {"_id": "x-other", "visitorId": "bystander", "page": "home", "blocks": blocks},
        ]
    )

    denied = await graphql(client, EXPORT, {"id": "gdpr-b"}, headers=INGEST)
    assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    exported = (await graphql(client, EXPORT, {"id": "carol"}, headers=ADMIN)).json()
    data = exported["data"]["exportVisitor"]
    assert data["aliases"] == ["gdpr-a", "gdpr-b"]
    assert len(data["events"]) == 4
    assert len(data["exposures"]) == 1
    assert [b["blockId"] for b in data["exposures"][0]["blocks"]] == ["home-hero", "home-banner"]
    assert [c["personalization"] for c in data["consentHistory"]] == [False]
    assert data["identities"][0]["_id"] == "carol"

    erased = (await graphql(client, ERASE, {"id": "gdpr-b"}, headers=ADMIN)).json()
    result = erased["data"]["eraseVisitor"]
    assert result["erased"] == 2 + 4 + 1 + 1 + 1  # profiles, events, identity, consent, exposure
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            text = json.dumps(doc, default=str)
            for secret in ("gdpr-a", "gdpr-b", "carol"):
                assert secret not in text, (name, doc)
    audit = await db["audit"].find_one({"_id": result["auditId"]})
    assert audit is not None
    assert audit["action"] == "erase"
    again = (await graphql(client, ERASE, {"id": "gdpr-b"}, headers=ADMIN)).json()
    assert again["data"]["eraseVisitor"]["erased"] == 0
    gone = (await graphql(client, EXPORT, {"id": "carol"}, headers=ADMIN)).json()
    assert gone["data"]["exportVisitor"] is None
    assert await db["profiles"].find_one({"_id": "bystander"}) is not None
    assert await db["exposures"].find_one({"_id": "x-other"}) is not None


async def test_erase_writes_queued_exposures_first_so_none_survive(
    client: httpx.AsyncClient, app: Starlette, mongo: Mongo, database_name: str
) -> None:
    await post(client, [event(visitor="gdpr-q")])
    services = app.state.services
    # A page view of the visitor, still in the gateway's queue when the erasure arrives.
    services.exposures.record([{"_id": "x-queued", "visitorId": "gdpr-q", "blocks": []}])
    erased = (await graphql(client, ERASE, {"id": "gdpr-q"}, headers=ADMIN)).json()
    assert erased["data"]["eraseVisitor"]["deleted"]["exposures"] == 1
    await services.exposures.flush()
    assert await mongo[database_name]["exposures"].find_one({"visitorId": "gdpr-q"}) is None


async def test_indexes_exist_and_retention_can_change(mongo: Mongo, database_name: str) -> None:
    from profiles.indexes import ensure_indexes

    db = mongo[database_name]
    # The per-block exposure index of the old document shape goes away.
    await db["exposures"].create_index(
        [("visitorId", 1), ("blockId", 1), ("ts", -1)], name="exposures_visitor_block"
    )
    await ensure_indexes(db, retention_days=90)
    await ensure_indexes(db, retention_days=90)  # idempotent
    exposures = await db["exposures"].index_information()
    assert exposures["exposures_visitor"]["key"] == [("visitorId", 1), ("ts", -1)]
    assert exposures["exposures_ttl"]["key"] == [("ts", 1)]
    assert exposures["exposures_ttl"]["expireAfterSeconds"] == 400 * 86400
    assert "exposures_visitor_block" not in exposures
    info = await db["events"].index_information()
    assert info["events_ttl"]["expireAfterSeconds"] == 90 * 86400
    await ensure_indexes(db, retention_days=7, exposure_retention_days=30)
    info = await db["events"].index_information()
    assert info["events_ttl"]["expireAfterSeconds"] == 7 * 86400
    exposures = await db["exposures"].index_information()
    assert exposures["exposures_ttl"]["expireAfterSeconds"] == 30 * 86400
    assert "events_visitor" in info


async def test_default_personalization_consent_applies_to_new_profiles(
    mongo: Mongo, database_name: str, clock: Any
) -> None:
    from profiles.ingest import ConsentDefaults, Ingestor
    from profiles.validation import Event, parse_event

    ingestor = Ingestor(
        mongo[database_name], clock=clock, consent=ConsentDefaults(personalization=False)
    )
    ingestor.reconcile_every = 3600
    await ingestor.start()
    raw = {"type": "page_view", "eventId": "opt-in-1", "visitorId": "eu"}
    parsed = parse_event(raw, 0, now=clock.now, max_skew=timedelta(days=1))
    assert isinstance(parsed, Event)
    try:
        await ingestor.submit([parsed])
    finally:
        await ingestor.aclose()
    profile = await mongo[database_name]["profiles"].find_one({"_id": "eu"})
    assert profile is not None
    assert profile["consent"] == {"analytics": True, "personalization": False, "source": "default"}
