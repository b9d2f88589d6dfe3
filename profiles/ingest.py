"""Durable, group-committed event ingestion.

Requests hand their validated events to one committer task. While a commit is
in flight the next requests queue; each commit takes everything queued (up to
`max_batch` events) and:

1. reads the visitors' profiles (one query) to apply consent: without
   analytics consent events are dropped, not stored;
2. inserts the events with one unordered `insert_many` under journaled write
   concern (`j: true`): `_id` is the event id, so a retried event is a
   duplicate key, counted and never applied twice;
3. applies the new events to each profile (a version-checked replace,
   retried on conflict), then links identities;
4. marks the events applied.

Only then are the requests answered, so a 2xx means the events are on disk
and the profile already reflects them. If step 2 fails the requests get
`IngestUnavailable` (HTTP 503 + Retry-After) and nothing is acknowledged; if
step 3 or 4 fails the events are durable and `reconcile()` (at start-up and
periodically) applies them, skipping any the profile already recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from profiles.events import EventType
from profiles.identity import finish_merge, link, redirect
from profiles.indexes import CONSENT_LOG, EVENTS
from profiles.store import MAX_HOPS, PROFILES
from profiles.traits import apply_events
from profiles.validation import Event

logger = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_ATTEMPTS = 50

Doc = dict[str, Any]


class IngestError(Exception):
    """Base of ingestion failures."""


class IngestUnavailable(IngestError):
    """MongoDB cannot take the events now; nothing was acknowledged."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the event store is unavailable; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(slots=True)
class IngestOutcome:
    """What happened to one request's events."""

    accepted: int = 0
    duplicates: int = 0
    dropped: int = 0
    profiles: dict[str, Doc] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsentDefaults:
    """Consent assumed for a visitor who never sent a consent event."""

    analytics: bool = True
    personalization: bool = True


@dataclass(slots=True)
class _Pending:
    events: Sequence[Event]
    future: asyncio.Future[IngestOutcome]


def _duplicate_indices(error: BulkWriteError) -> set[int]:
    details = error.details.get("writeErrors", [])
    others = [e for e in details if e.get("code") != DUPLICATE_KEY]
    if others or error.details.get("writeConcernErrors"):
        raise error
    return {int(e["index"]) for e in details}


class Ingestor:
    """Accepts validated events and answers once they are durable."""

    def __init__(
        self,
        database: AsyncDatabase[Doc],
        *,
        clock: Callable[[], datetime],
        half_life_days: float = 30.0,
        consent: ConsentDefaults = ConsentDefaults(),
        window: float = 0.002,
        max_batch: int = 2000,
        retry_after: int = 2,
    ) -> None:
        self.database = database
        journaled = WriteConcern(w=1, j=True)
        self.events: AsyncCollection[Doc] = database.get_collection(EVENTS, write_concern=journaled)
        self.consent_log: AsyncCollection[Doc] = database.get_collection(
            CONSENT_LOG, write_concern=journaled
        )
        self.profiles: AsyncCollection[Doc] = database[PROFILES]
        self.clock = clock
        self.half_life_days = half_life_days
        self.consent = consent
        self.window = window
        self.max_batch = max_batch
        self.retry_after = retry_after
        self.commits = 0
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._down_until = 0.0

    # -- the request side --------------------------------------------------------

    async def submit(self, events: Sequence[Event]) -> IngestOutcome:
        """Store `events` durably and apply them; raises IngestUnavailable."""
        if time.monotonic() < self._down_until:
            raise IngestUnavailable(self.retry_after)
        if not events:
            return IngestOutcome()
        if self._task is None:
            raise RuntimeError("Ingestor.start() was not called")
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(events, future))
        return await asyncio.shield(future)

    def start(self, *, reconcile_every: float = 30.0) -> None:
        """Start the committer task and the periodic reconciliation."""
        self._task = asyncio.create_task(self._run(), name="event-committer")
        self._reconciler = asyncio.create_task(
            self._reconcile_loop(reconcile_every), name="event-reconciler"
        )

    async def _reconcile_loop(self, every: float) -> None:
        while True:
            try:
                await self.reconcile()
            except PyMongoError as exc:
                logger.warning("event reconciliation failed, will retry: %s", exc)
            await asyncio.sleep(every)

    async def stop(self) -> None:
        """Stop the committer after the queued events are committed."""
        if self._task is None:
            return
        await self._queue.join()
        for task in (self._task, self._reconciler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reconciler = None

    # -- the committer -----------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            count = len(batch[0].events)
            deadline = loop.time() + self.window
            while count < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                count += len(item.events)
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._flush([p.events for p in batch])
        except PyMongoError as exc:
            self._down_until = time.monotonic() + self.retry_after
            logger.error("event commit failed, answering 503 for %d requests: %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(IngestUnavailable(self.retry_after))
            return
        except Exception as exc:  # never leave a request waiting forever
            logger.exception("event commit failed unexpectedly")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.commits += 1
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)

    async def _canonical(self, visitor_ids: set[str]) -> tuple[dict[str, str], dict[str, Doc]]:
        """Visitor id → profile id holding its data, and those profiles."""
        docs: dict[str, Doc] = {}
        ids = set(visitor_ids)
        owner = {v: v for v in visitor_ids}
        for _ in range(MAX_HOPS):
            if not ids:
                break
            async for doc in self.profiles.find({"_id": {"$in": sorted(ids)}}):
                docs[doc["_id"]] = doc
            ids = set()
            for visitor, pid in owner.items():
                target = redirect(docs.get(pid))
                if target is not None:
                    owner[visitor] = target
                    if target not in docs:
                        ids.add(target)
        return owner, docs

    async def _flush(self, requests: Sequence[Sequence[Event]]) -> list[IngestOutcome]:
        now = self.clock()
        outcomes = [IngestOutcome() for _ in requests]
        tagged = [(i, e) for i, events in enumerate(requests) for e in events]
        owner, docs = await self._canonical({e.visitor_id for _, e in tagged})
        by_profile: dict[str, list[tuple[int, Event]]] = defaultdict(list)
        for i, event in tagged:
            by_profile[owner[event.visitor_id]].append((i, event))
        stored: list[tuple[int, Event]] = []
        consents: list[tuple[int, Event]] = []
        for pid, items in by_profile.items():
            state = dict(docs.get(pid, {}).get("consent") or {})
            analytics = bool(state.get("analytics", self.consent.analytics))
            for i, event in sorted(items, key=lambda item: item[1].timestamp):
                if event.type is EventType.CONSENT:
                    consents.append((i, event))
                    analytics = bool(event.properties.get("analytics", analytics))
                elif analytics:
                    stored.append((i, event))
                else:
                    outcomes[i].dropped += 1
        new: list[tuple[int, Event]] = []
        new += await self._insert(self.events, stored, outcomes, lambda e: e.document())
        new += await self._insert(self.consent_log, consents, outcomes, _consent_record)
        # Apply to profiles; events already durable, so failures here are reconciled later.
        grouped: dict[str, list[Event]] = defaultdict(list)
        for _, event in new:
            grouped[owner[event.visitor_id]].append(event)
        try:
            results = await asyncio.gather(
                *(self._write(pid, events, docs.get(pid), now) for pid, events in grouped.items())
            )
            for _, event in new:
                if event.type is EventType.IDENTIFY and event.user_id:
                    await link(self.database, owner[event.visitor_id], event.user_id, now)
            applied = [e.event_id for _, e in new if e.type is not EventType.CONSENT]
            if applied:
                await self.events.with_options(write_concern=WriteConcern(w=1)).update_many(
                    {"_id": {"$in": applied}}, {"$set": {"applied": True}}
                )
        except PyMongoError as exc:
            logger.warning(
                "events stored but not yet applied to profiles (reconciled later): %s", exc
            )
            return outcomes
        written = dict(zip(grouped, results, strict=True))
        for i, event in tagged:
            profile = written.get(owner[event.visitor_id]) or docs.get(owner[event.visitor_id])
            if profile is not None:
                outcomes[i].profiles[event.visitor_id] = profile
        return outcomes

    async def _insert(
        self,
        collection: AsyncCollection[Doc],
        items: list[tuple[int, Event]],
        outcomes: list[IngestOutcome],
        document: Callable[[Event], Doc],
    ) -> list[tuple[int, Event]]:
        if not items:
            return []
        # Duplicates inside one commit: keep the first.
        unique: list[tuple[int, Event]] = []
        seen: set[str] = set()
        for i, event in items:
            if event.event_id in seen:
                outcomes[i].duplicates += 1
            else:
                seen.add(event.event_id)
                unique.append((i, event))
        duplicates: set[int] = set()
        try:
            await collection.insert_many([document(e) for _, e in unique], ordered=False)
        except BulkWriteError as exc:
            duplicates = _duplicate_indices(exc)
        new = []
        for position, (i, event) in enumerate(unique):
            if position in duplicates:
                outcomes[i].duplicates += 1
            else:
                outcomes[i].accepted += 1
                new.append((i, event))
        return new

    async def _write(
        self, profile_id: str, events: list[Event], guess: Doc | None, now: datetime
    ) -> Doc:
        """Apply `events` to `profile_id` with a version check, retrying on conflict."""
        current = guess
        fresh = guess is None
        for _ in range(MAX_ATTEMPTS):
            if not fresh:
                current = await self.profiles.find_one({"_id": profile_id})
            fresh = False
            target = redirect(current)
            if target is not None:
                if current is not None and "mergingInto" in current:
                    await finish_merge(self.profiles, profile_id, now)
                profile_id = target
                continue
            updated = apply_events(
                current, profile_id, events, now=now, half_life_days=self.half_life_days
            )
            if current is None:
                try:
                    await self.profiles.insert_one(updated)
                except DuplicateKeyError:
                    continue
                return updated
            if "version" in current:
                condition: Doc = {"_id": profile_id, "version": current["version"]}
            else:
                condition = {"_id": profile_id, "version": {"$exists": False}}
            result = await self.profiles.replace_one(condition, updated)
            if result.matched_count:
                return updated
        raise PyMongoError(f"profile {profile_id!r} kept changing; its events will be reconciled")

    # -- reconciliation ----------------------------------------------------------

    async def reconcile(
        self, *, grace: timedelta = timedelta(seconds=10), limit: int = 1000
    ) -> int:
        """Apply stored events a failed commit left unapplied; returns how many."""
        cutoff = self.clock() - grace
        cursor = self.events.find({"applied": False, "receivedAt": {"$lte": cutoff}}).limit(limit)
        events = [Event.from_document(doc) async for doc in cursor]
        if not events:
            return 0
        now = self.clock()
        owner, _ = await self._canonical({e.visitor_id for e in events})
        grouped: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            grouped[owner[event.visitor_id]].append(event)
        for pid, items in grouped.items():
            await self._write(pid, items, None, now)
        for event in events:
            if event.type is EventType.IDENTIFY and event.user_id:
                await link(self.database, owner[event.visitor_id], event.user_id, now)
        await self.events.update_many(
            {"_id": {"$in": [e.event_id for e in events]}}, {"$set": {"applied": True}}
        )
        logger.info("reconciled %d stored events into profiles", len(events))
        return len(events)


def _consent_record(event: Event) -> Doc:
    record: Doc = {
        "_id": event.event_id,
        "visitorId": event.visitor_id,
        "at": event.timestamp,
        "receivedAt": event.received_at,
        "source": str(event.properties.get("source") or event.context.get("page") or "event"),
    }
    for key in ("analytics", "personalization"):
        if key in event.properties:
            record[key] = event.properties[key]
    return record
