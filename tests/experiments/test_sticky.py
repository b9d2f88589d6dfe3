"""Sticky buckets in the profile: the writer, identity merges and `identify` through the gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from starlette.applications import Starlette

from blocks.context import sticky_buckets
from blocks.experiments import hash
from delivery.services import Services
from profiles.sticky import PendingWrite, StickyBucketWriter, document_key, update_for
from profiles.traits import merge_profiles
from tests.graphql_helpers import ADMIN, graphql

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = "sale-hero-headline"
PAGE = (
    '{ page(slug: "sale") { blocks { id blockId variantId decision { experiment variation } } } }'
)


def doc(attribute: str, value: str, **assignments: str) -> dict[str, Any]:
    return {"attributeName": attribute, "attributeValue": value, "assignments": assignments}


async def test_the_writer_creates_and_updates_the_profile(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    profiles = mongo[database_name]["profiles"]
    writer = StickyBucketWriter(
        profiles, clock=lambda: NOW, consent={"analytics": True, "personalization": True}
    )
    await writer.save(PendingWrite("v1", (doc("visitorId", "v1", **{"exp-a__0": "b"}),)))
    await writer.save(PendingWrite("v1", (doc("visitorId", "v1", **{"exp-b__2": "c"}),)))
    profile = await profiles.find_one({"_id": "v1"})
    assert profile is not None
    stored = profile["stickyBuckets"][document_key("visitorId", "v1")]
    assert stored == doc("visitorId", "v1", **{"exp-a__0": "b", "exp-b__2": "c"})
    assert profile["version"] == 2
    assert profile["consent"] == {"analytics": True, "personalization": True, "source": "default"}
    # What the next page reads: GrowthBook's documents by `attribute||value`.
    assert sticky_buckets(profile) == {"visitorId||v1": stored}
    await profiles.insert_one({"_id": "v2", "traits": {"orders": 3}, "version": 7})
    await writer.save(PendingWrite("v2", (doc("userId", "u.2@x", **{"exp-a__0": "a"}),)))
    kept = await profiles.find_one({"_id": "v2"})
    assert kept is not None
    assert kept["traits"] == {"orders": 3}
    assert kept["version"] == 8
    assert "consent" not in kept
    assert sticky_buckets(kept)["userId||u.2@x"]["assignments"] == {"exp-a__0": "a"}


def test_only_well_formed_assignment_keys_reach_a_mongodb_path() -> None:
    fields = update_for(
        (doc("visitorId", "v.1", **{"ok-key__0": "a", "bad.key__0": "b", "$set__0": "c"}),)
    )
    assert fields is not None
    assignment_paths = [k for k in fields if ".assignments." in k]
    assert [path.rsplit(".", 1)[1] for path in assignment_paths] == ["ok-key__0"]
    assert update_for(({"attributeName": 1},)) is None


async def test_a_full_queue_drops_and_counts(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    writer = StickyBucketWriter(mongo[database_name]["profiles"], clock=lambda: NOW, max_queue=1)
    writer.record("a", (doc("visitorId", "a", **{"x__0": "1"}),))
    writer.record("b", (doc("visitorId", "b", **{"x__0": "1"}),))  # dropped: queue full
    assert writer.pending == 1
    await writer.start()
    await writer.flush()
    await writer.aclose()
    assert await mongo[database_name]["profiles"].count_documents({}) == 1


def test_an_identity_merge_keeps_both_identities_assignments() -> None:
    anonymous = {"_id": "v1", "stickyBuckets": {"k1": doc("visitorId", "v1", **{"e__0": "b"})}}
    known = {
        "_id": "u-profile",
        "userId": "u1",
        "stickyBuckets": {"k2": doc("userId", "u1", **{"f__0": "a"})},
    }
    merged = merge_profiles(known, anonymous, now=NOW)
    assert set(merged["stickyBuckets"]) == {"k1", "k2"}


async def test_a_visitor_keeps_their_arm_after_identify(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    services: Services = app.state.services
    assert services.sticky is not None
    rescued = 0
    for i in range(8):
        visitor, user = f"sticky-{i}", f"user-{i}"
        body = (await graphql(client, PAGE, visitor=visitor)).json()
        before = next(b for b in body["data"]["page"]["blocks"] if b["blockId"] == "sale-hero")
        await services.sticky.flush()
        event = {
            "type": "identify",
            "eventId": uuid.uuid4().hex,
            "visitorId": visitor,
            "userId": user,
        }
        assert (await client.post("/v1/events", json=[event], headers=ADMIN)).status_code == 200
        body = (await graphql(client, PAGE, visitor=visitor)).json()
        after = next(b for b in body["data"]["page"]["blocks"] if b["blockId"] == "sale-hero")
        assert after["decision"] == before["decision"]
        n = hash(KEY, user, 2)
        assert n is not None
        # Without the sticky bucket, hashing the user id would have moved this visitor.
        rescued += int(n >= 0.5) != before["decision"]["variation"]
        await services.sticky.flush()
        profile = await mongo[database_name]["profiles"].find_one({"_id": visitor})
        assert profile is not None
        assert profile["userId"] == user
        # Now also stored under the user id, for the user's other devices.
        assert f"userId||{user}" in sticky_buckets(profile)
    assert rescued > 0


async def test_erasure_waits_for_queued_assignments(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services: Services = app.state.services
    writer = services.sticky
    assert writer is not None
    visitor = "sticky-erased"
    await graphql(client, PAGE, visitor=visitor)  # queues the visitor's assignment
    flushed = []
    original = writer.flush

    async def flush() -> None:
        flushed.append(writer.pending)
        await original()

    monkeypatch.setattr(writer, "flush", flush)
    erase = 'mutation { eraseVisitor(id: "sticky-erased") { erased } }'
    body = (await graphql(client, erase, headers=ADMIN)).json()
    assert body["data"]["eraseVisitor"]["erased"] >= 1
    # The erasure wrote what was queued first, so nothing recreates the profile after it.
    assert flushed
    await original()
    assert await mongo[database_name]["profiles"].find_one({"_id": visitor}) is None
