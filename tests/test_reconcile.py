"""Crash windows of a commit, replayed against the real database server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from profiles.indexes import ensure_indexes
from profiles.ingest import Ingestor, IngestOutcome
from profiles.validation import Event, parse_event
from tests.conftest import Clock

Mongo = AsyncMongoClient[dict[str, Any]]


def events(clock: Clock, visitor: str, n: int) -> list[Event]:
    out = []
    for i in range(n):
        raw = {
            "type": "purchase", "eventId": f"{visitor}-{i}", "visitorId": visitor,
            "properties": {"revenue": 10.0, "category": "tv"},
        }  # fmt: skip
        parsed = parse_event(raw, i, now=clock.now, max_skew=timedelta(days=1))
        assert isinstance(parsed, Event)
        out.append(parsed)
    return out


async def test_events_stored_but_not_applied_are_reconciled_once(
    mongo: Mongo, database_name: str, clock: Clock
) -> None:
    db = mongo[database_name]
    await ensure_indexes(db, retention_days=90)
    ingestor = Ingestor(db, clock=clock)
    batch = events(clock, "crashed", 5)
    # The commit's first half: marker, then the journaled insert; then the "crash".
    await ingestor.pending.insert_one({"_id": "c-1", "at": clock.now})
    await ingestor._insert(
        ingestor.events, list(enumerate(batch)), [IngestOutcome()] * 5, lambda e: e.document("c-1")
    )
    assert await db["profiles"].find_one({"_id": "crashed"}) is None
    clock.now += timedelta(seconds=30)
    assert await ingestor.reconcile() == 5
    assert await ingestor.reconcile() == 0
    profile = await db["profiles"].find_one({"_id": "crashed"})
    assert profile is not None
    assert (profile["traits"]["orders"], profile["traits"]["ltv"]) == (5, 50.0)
    assert await db["pending_commits"].count_documents({}) == 0


async def test_a_commit_already_in_the_profile_is_not_applied_again(
    mongo: Mongo, database_name: str, clock: Clock
) -> None:
    db = mongo[database_name]
    ingestor = Ingestor(db, clock=clock)
    ingestor.start(reconcile_every=3600)
    try:
        outcome = await ingestor.submit(events(clock, "done", 3))
    finally:
        await ingestor.stop()
    assert outcome.accepted == 3
    profile = await db["profiles"].find_one({"_id": "done"})
    assert profile is not None
    # The crash came after the profile write, before the marker was deleted.
    await db["pending_commits"].insert_one({"_id": profile["commits"][-1], "at": clock.now})
    clock.now += timedelta(seconds=30)
    assert await ingestor.reconcile() == 3
    again = await db["profiles"].find_one({"_id": "done"})
    assert again is not None
    assert again["traits"]["orders"] == 3
    assert again["version"] == profile["version"]


async def test_recent_commits_wait_for_their_committer(
    mongo: Mongo, database_name: str, clock: Clock
) -> None:
    db = mongo[database_name]
    ingestor = Ingestor(db, clock=clock)
    await db["pending_commits"].insert_one({"_id": "in-flight", "at": clock.now})
    assert await ingestor.reconcile() == 0
    assert await db["pending_commits"].count_documents({}) == 1
