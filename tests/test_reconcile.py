"""Crash windows of a commit, replayed against the real database server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
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
    ingestor.reconcile_every = 3600
    await ingestor.start()
    try:
        outcome = await ingestor.submit(events(clock, "done", 3))
    finally:
        await ingestor.aclose()
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


def failures(error: str) -> float:
    labels = {"error": error}
    return REGISTRY.get_sample_value("tessera_event_reconcile_failures_total", labels) or 0.0


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    # Generous: late in a full run the session's server (pure Python) is slow.
    # The loop returns as soon as the condition holds.
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {condition.__name__}"
        await asyncio.sleep(0.02)


async def test_a_profile_that_cannot_be_updated_fails_neither_the_request_nor_the_reconciler(
    mongo: Mongo, database_name: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    db = mongo[database_name]
    await ensure_indexes(db, retention_days=90)
    # A profile damaged outside Tessera: updating it raises AttributeError, not a PyMongoError.
    await db["profiles"].insert_one({"_id": "corrupt", "version": 1, "traits": "damaged"})
    ingestor = Ingestor(db, clock=clock)
    ingestor.reconcile_every = 0.02
    await ingestor.start()
    try:
        outcomes = await asyncio.gather(
            ingestor.submit(events(clock, "corrupt", 2)), ingestor.submit(events(clock, "fine", 2))
        )
        # The events are durable, so both requests are acknowledged; the healthy profile is written.
        assert [o.accepted for o in outcomes] == [2, 2]
        fine = await db["profiles"].find_one({"_id": "fine"})
        assert fine is not None
        assert fine["traits"]["orders"] == 2
        marker = await db["pending_commits"].find_one({})
        assert marker is not None

        before = failures("AttributeError")
        clock.now += timedelta(seconds=30)  # past the grace period: the reconciler takes it

        async def failed_three_rounds() -> bool:
            return failures("AttributeError") >= before + 3

        await wait_for(failed_three_rounds)
        assert ingestor._reconciler is not None
        assert not ingestor._reconciler.done(), "the reconciler died"
        stuck = await db["pending_commits"].find_one({"_id": marker["_id"]})
        assert stuck is not None
        assert stuck["attempts"] >= 3
        assert "AttributeError" in stuck["lastError"]
        logged = [r for r in caplog.records if "could not be reconciled" in r.getMessage()]
        assert len(logged) == 1

        # Other commits are still reconciled while the damaged one keeps failing.
        later = events(clock, "later", 3)
        await ingestor._insert(
            ingestor.events, list(enumerate(later)), [IngestOutcome()] * 3,
            lambda e: e.document("c-later"),
        )  # fmt: skip
        # The marker last: one already past its grace period would be replayed (and dropped)
        # by the running reconciler before the events it names were stored.
        await ingestor.pending.insert_one(
            {"_id": "c-later", "at": clock.now - timedelta(minutes=1)}
        )

        async def later_applied() -> bool:
            return await db["profiles"].find_one({"_id": "later"}) is not None

        await wait_for(later_applied)

        # Once the profile is repaired, its commit is applied and the marker goes.
        await db["profiles"].update_one({"_id": "corrupt"}, {"$set": {"traits": {}}})

        async def no_markers() -> bool:
            return await db["pending_commits"].count_documents({}) == 0

        await wait_for(no_markers)
        repaired = await db["profiles"].find_one({"_id": "corrupt"})
        assert repaired is not None
        assert repaired["traits"]["orders"] == 2
    finally:
        await ingestor.aclose()


class Flaky(Ingestor):
    """Its first reconciliation round fails with an error that is not a PyMongoError."""

    rounds = 0

    async def reconcile(self, *, grace: timedelta = timedelta(seconds=10)) -> int:
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("injected failure")
        return await super().reconcile(grace=grace)


async def test_the_reconciler_loop_survives_any_error(
    mongo: Mongo, database_name: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor = Flaky(mongo[database_name], clock=clock)
    before = failures("RuntimeError")
    ingestor.reconcile_every = 0.01
    await ingestor.start()
    try:

        async def three_rounds() -> bool:
            return ingestor.rounds >= 3

        await wait_for(three_rounds)
    finally:
        await ingestor.aclose()
    assert failures("RuntimeError") == before + 1
    assert [r.levelname for r in caplog.records if "injected failure" in r.getMessage()] == [
        "ERROR"
    ]
