"""Durable, group-committed event ingestion.

Requests hand their validated events to one committer task. An event that
cannot be stored as a MongoDB document (checked with `bson` before it joins a
commit) is refused on its own, so it can never fail other clients' events.
While a commit is in flight the next requests queue; each commit takes
everything queued (up to `max_batch` events) and:

1. reads the visitors' profiles (one query) to apply consent: without
   analytics consent events are dropped, not stored;
2. writes a marker for the commit (`pending_commits`), then inserts the events
   with one unordered `insert_many` under journaled write concern (`j: true`,
   which also flushes the marker written before it): `_id` is the event id, so
   a retried event is a duplicate key, counted and never applied twice; each
   stored event names its commit; an event the server refuses on its own is
   reported back as that event's problem;
3. applies the new events to each profile (a version-checked replace,
   retried on conflict; the profile records the commit id), links identities,
   and deletes the marker.

Only then are the requests answered, so a 2xx means the events are on disk
and the profile already reflects them. If step 2 fails because MongoDB is
unreachable the requests get `IngestUnavailable` (HTTP 503 + Retry-After) and
nothing is acknowledged. If it fails for any other reason, whatever the commit
stored is applied and its marker removed at once, and the commit is retried in
halves until only the offending request fails (`IngestRejected`, a 4xx, when
the database refuses what it holds). If step 3 fails (for one profile or all)
the events are durable and acknowledged, and `reconcile()` (at start-up and
every 30 s) applies the marked commits to every profile that does not list them
yet; it survives any error, logging each distinct problem once and counting it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson.errors import BSONError
from pymongo import WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)

from common.service import Service, Timeout, cancel, seconds
from profiles.events import EventType
from profiles.identity import finish_merge, link, redirect
from profiles.indexes import CONSENT_LOG, EVENTS, PENDING
from profiles.metrics import (
    EVENT_APPLY_FAILURES,
    EVENT_COMMIT_SPLITS,
    EVENT_RECONCILE_FAILURES,
    EVENTS_REFUSED,
)
from profiles.store import MAX_HOPS, PROFILES
from profiles.traits import apply_events
from profiles.validation import Event, event_storage_problems, label

logger = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_ATTEMPTS = 50
# Server error codes that mean "this document is unacceptable", not "try again later".
BAD_DOCUMENT_CODES = frozenset({2, 14, 52, 121, 10334, 17419})

Doc = dict[str, Any]


class IngestError(Exception):
    """Base of ingestion failures."""


class IngestUnavailable(IngestError):
    """MongoDB cannot take the events now; nothing was acknowledged."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the event store is unavailable; retry in {retry_after} s")
        self.retry_after = retry_after


class IngestRejected(IngestError):
    """The database refuses what this request's events hold; nothing was acknowledged."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the events cannot be stored: {reason}")


class CommitIncomplete(IngestError):
    """Some profiles of a stored commit could not be updated (the first failure is the cause)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A submitted event that cannot be stored: the event, the field and the reason."""

    event: Event
    field: str
    message: str


@dataclass(slots=True)
class IngestOutcome:
    """What happened to one request's events."""

    accepted: int = 0
    duplicates: int = 0
    dropped: int = 0
    profiles: dict[str, Doc] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConsentDefaults:
    """Consent assumed for a visitor who never sent a consent event."""

    analytics: bool = True
    personalization: bool = True


@dataclass(slots=True)
class _Pending:
    events: Sequence[Event]
    future: asyncio.Future[IngestOutcome]


def _write_errors(error: BulkWriteError) -> tuple[set[int], dict[int, str]]:
    """The positions of duplicate keys, and of documents the server refused (with why)."""
    if error.details.get("writeConcernErrors"):
        raise error  # durability unknown: treated as an outage
    duplicates: set[int] = set()
    refused: dict[int, str] = {}
    for detail in error.details.get("writeErrors", []):
        if detail.get("code") == DUPLICATE_KEY:
            duplicates.add(int(detail["index"]))
        else:
            refused[int(detail["index"])] = label(detail.get("errmsg") or detail.get("code"), 200)
    return duplicates, refused


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means MongoDB cannot take writes now (rather than a problem with the data)."""
    if isinstance(exc, (ConnectionFailure, WriteConcernError, WTimeoutError, ExecutionTimeout)):
        return True
    if isinstance(exc, BulkWriteError):
        return bool(exc.details.get("writeConcernErrors"))
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")


def _bad_data(exc: BaseException) -> bool:
    """Whether `exc` blames the documents written (so the request gets a 4xx)."""
    if isinstance(exc, (BSONError, OverflowError, UnicodeError)):
        return True
    return isinstance(exc, OperationFailure) and exc.code in BAD_DOCUMENT_CODES


class ProblemLog:
    """Logs each distinct problem once, however often it recurs (a flood never floods the log)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def report(self, where: str, exc: BaseException) -> None:
        """Log `exc` (with its traceback) unless the same problem was already logged."""
        key = f"{where}|{type(exc).__name__}|{str(exc)[:200]}"
        if key in self._seen:
            return
        if len(self._seen) >= self.limit:
            if len(self._seen) == self.limit:
                self._seen.add("")
                logger.error("more distinct ingestion problems: only counted from now on")
            return
        self._seen.add(key)
        logger.error("%s (logged once): %s: %s", where, type(exc).__name__, exc, exc_info=exc)


def _retrieve(future: asyncio.Future[IngestOutcome]) -> None:
    """Consume an abandoned commit's exception so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


#: A commit running longer than this (seconds) means the database is slow for events.
BEHIND_SECONDS = 0.5


class Ingestor(Service):
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
        reconcile_every: float = 30.0,
        submit_timeout: float = 2.0,
        max_wait_seconds: float = 5.0,
        close_timeout: Timeout = 10.0,
        on_profile: Callable[[Doc], None] | None = None,
        annotate: Callable[[Doc, datetime], None] | None = None,
        answered: Callable[[], float] | None = None,
    ) -> None:
        self.database = database
        journaled = WriteConcern(w=1, j=True)
        self.events: AsyncCollection[Doc] = database.get_collection(EVENTS, write_concern=journaled)
        self.consent_log: AsyncCollection[Doc] = database.get_collection(
            CONSENT_LOG, write_concern=journaled
        )
        self.profiles: AsyncCollection[Doc] = database[PROFILES]
        self.pending: AsyncCollection[Doc] = database[PENDING]
        self.clock = clock
        self.half_life_days = half_life_days
        self.consent = consent
        self.window = window
        self.max_batch = max_batch
        self.retry_after = retry_after
        self.reconcile_every = reconcile_every
        #: How long a commit may go without the database answering anything before its
        #: requests are told to retry (503): a stalled or paused database.
        self.submit_timeout = submit_timeout
        #: The longest a request waits for its events while the database still answers
        #: (slowly): under the usual client timeouts, however long the queue.
        self.max_wait_seconds = max_wait_seconds
        #: When the database last answered a command (`time.monotonic()`), if known.
        self.answered = answered
        self.close_timeout = close_timeout
        #: Told of every profile written (the near-cache's `update`).
        self.on_profile = on_profile
        #: Adds what models derive from a profile before it is written (its segment).
        self.annotate = annotate
        self.commits = 0
        self.problems = ProblemLog()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._down_until = 0.0
        #: When the commit in flight started (monotonic), None while idle.
        self._commit_started: float | None = None

    # -- the request side --------------------------------------------------------

    async def submit(self, events: Sequence[Event]) -> IngestOutcome:
        """Store `events` durably and apply them; raises IngestUnavailable or IngestRejected.

        An event that cannot be stored is left out and reported in `rejected`.
        """
        if time.monotonic() < self._down_until or self._stalled():
            # Nothing queued behind a stalled commit: the queue would only grow.
            EVENTS_REFUSED.labels("unavailable").inc(len(events))
            raise IngestUnavailable(self.retry_after)
        rejected = [
            Rejection(event, path, message)
            for event in events
            for path, message in self.storage_problems(event)
        ]
        if rejected:
            refused = {id(r.event) for r in rejected}
            EVENTS_REFUSED.labels("unstorable").inc(len(refused))
            events = [e for e in events if id(e) not in refused]
        if not events:
            return IngestOutcome(rejected=rejected)
        if self._task is None:
            raise RuntimeError("Ingestor.start() was not called")
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(events, future))
        outcome = await self._wait(future, len(events))
        outcome.rejected[:0] = rejected
        return outcome

    async def _wait(self, future: asyncio.Future[IngestOutcome], count: int) -> IngestOutcome:
        """The commit's outcome; IngestUnavailable once the committer looks stalled.

        A commit that looks stuck (`_stalled`: a paused database) answers its
        waiting requests 503 at once; a busy committer that keeps finishing
        commits is waited for, each request at most `max_wait_seconds` (queued
        behind a slow commit, then in its own). The commit itself goes on, and a
        retry with the same event ids is a duplicate, never a second copy.
        """
        began = time.monotonic()
        while True:
            done, _ = await asyncio.wait({future}, timeout=min(0.25, self.submit_timeout))
            if done:
                return future.result()
            if self._stalled() or time.monotonic() - began > self.max_wait_seconds:
                EVENTS_REFUSED.labels("stalled").inc(count)
                # The future stays with the commit: its outcome is simply not awaited.
                future.add_done_callback(_retrieve)
                raise IngestUnavailable(self.retry_after)

    def behind(self) -> bool:
        """Whether event commits are slow right now: one has run past `BEHIND_SECONDS`.

        Writers that can wait (exposures) hold back meanwhile: events are
        acknowledged first-party data, and the database's time goes to them first.
        """
        started = self._commit_started
        return started is not None and time.monotonic() - started > BEHIND_SECONDS

    def _stalled(self) -> bool:
        """Whether the commit in flight looks stuck: requests are then answered 503.

        Stuck means running past `submit_timeout` while the database answered
        nothing for as long (paused, wedged, unreachable), or past
        `max_wait_seconds` at all. A database that is only slow (loaded) keeps
        answering commands, and its commits are waited for: refusing them would
        turn load into lost beacons.
        """
        started = self._commit_started
        if started is None:
            return False
        now = time.monotonic()
        running = now - started
        if running <= self.submit_timeout:
            return False
        if self.answered is None or running > self.max_wait_seconds:
            return True
        return now - max(self.answered(), started) > self.submit_timeout

    def storage_problems(self, event: Event) -> list[tuple[str, str]]:
        """Why `event` cannot join a commit (BSON limits), by field; empty if it can."""
        return event_storage_problems(event)

    async def start(self) -> None:
        """Start the committer task and the periodic reconciliation."""
        self._task = asyncio.create_task(self._run(), name="event-committer")
        self._reconciler = asyncio.create_task(
            self._reconcile_loop(self.reconcile_every), name="event-reconciler"
        )

    async def _reconcile_loop(self, every: float) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:  # a dead reconciler would strand stored events for good
                EVENT_RECONCILE_FAILURES.labels(type(exc).__name__).inc()
                if is_outage(exc):
                    logger.warning("event reconciliation failed, will retry: %s", exc)
                else:
                    self.problems.report("event reconciliation failed, will retry", exc)
            await asyncio.sleep(every)

    async def aclose(self) -> None:
        """Stop the committer once the queued events are committed (bounded in time).

        Requests still waiting past `close_timeout` were already answered 503 or
        are answered so now; their events, if stored, are applied by the next
        start's reconciliation.
        """
        if self._task is None:
            return
        timeout = seconds(self.close_timeout)
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            logger.error("event commits did not finish in %.1f s; stopping", timeout)
        for task in (self._task, self._reconciler):
            await cancel(task)
        self._task = self._reconciler = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                EVENTS_REFUSED.labels("shutdown").inc(len(pending.events))
                pending.future.set_exception(IngestUnavailable(self.retry_after))

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
            self._commit_started = time.monotonic()
            try:
                await self._commit(batch)
            finally:
                self._commit_started = None
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending], tried: tuple[str, ...] = ()) -> None:
        """Commit `batch`; `tried` names earlier failed commits of the same events."""
        attempt: list[str] = []
        try:
            outcomes = await self._flush([p.events for p in batch], attempt, tried)
        except Exception as exc:  # never leave a request waiting forever
            await self._failed(batch, exc, (*tried, *attempt))
            return
        self.commits += 1
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.future.done():
                pending.future.set_result(outcome)

    async def _failed(self, batch: list[_Pending], exc: Exception, tried: tuple[str, ...]) -> None:
        if is_outage(exc):
            self._down_until = time.monotonic() + self.retry_after
            logger.error("event commit failed, answering 503 for %d requests: %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    EVENTS_REFUSED.labels("outage").inc(len(pending.events))
                    pending.future.set_exception(IngestUnavailable(self.retry_after))
            return
        if len(batch) > 1:
            # Not an outage, so something in the batch: retry the halves until only the
            # offending request fails, and every other client's events are stored.
            EVENT_COMMIT_SPLITS.inc()
            self.problems.report("a shared event commit failed; retrying it in halves", exc)
            half = len(batch) // 2
            await self._commit(batch[:half], tried)
            await self._commit(batch[half:], tried)
            return
        pending = batch[0]
        error: IngestError
        if _bad_data(exc):
            error = IngestRejected(label(exc, 200))
        else:
            self.problems.report("an event commit failed unexpectedly", exc)
            error = IngestUnavailable(self.retry_after)
        if not pending.future.done():
            cause = "database" if isinstance(error, IngestRejected) else "outage"
            EVENTS_REFUSED.labels(cause).inc(len(pending.events))
            pending.future.set_exception(error)

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

    async def _flush(
        self,
        requests: Sequence[Sequence[Event]],
        attempt: list[str] | None = None,
        tried: Sequence[str] = (),
    ) -> list[IngestOutcome]:
        now = self.clock()
        commit = uuid.uuid4().hex
        if attempt is not None:
            attempt.append(commit)
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
        if not stored and not consents:
            return outcomes
        # The marker precedes the events in the journal, so the journaled insert
        # below makes it durable too; it is removed once the profiles hold the commit.
        await self.pending.insert_one({"_id": commit, "at": now})
        new: list[tuple[int, Event]] = []
        try:
            new += await self._insert(
                self.events, stored, outcomes, lambda e: e.document(commit), tried
            )
            new += await self._insert(
                self.consent_log, consents, outcomes, lambda e: _consent_record(e, commit), tried
            )
        except Exception as exc:
            if not is_outage(exc):
                # Part of the commit may be on disk: apply that part now and drop the marker,
                # so a retry of the same events finds them applied and no marker lingers.
                await self._settle(commit)
            raise
        written, failures = await self._apply(commit, [e for _, e in new], owner, docs, now)
        for failure in failures:
            EVENT_APPLY_FAILURES.labels(type(failure).__name__).inc()
            if isinstance(failure, PyMongoError):
                logger.warning(
                    "events stored, profiles not yet updated (reconciled later): %s", failure
                )
            else:
                self.problems.report(
                    "events stored, a profile update failed (reconciled later)", failure
                )
        if not failures:
            try:
                await self.pending.delete_one({"_id": commit})
            except PyMongoError as exc:  # the reconciler removes it (the profiles hold the commit)
                logger.warning("commit marker not removed yet: %s", exc)
        for i, event in tagged:
            profile = written.get(owner[event.visitor_id]) or docs.get(owner[event.visitor_id])
            if profile is not None:
                outcomes[i].profiles[event.visitor_id] = profile
        return outcomes

    async def _settle(self, commit: str) -> None:
        """Finish a failed commit now: apply what it stored and drop its marker (best effort)."""
        try:
            await self._replay(commit)
        except Exception as exc:  # the reconciler tries again later
            self.problems.report("a failed commit could not be settled yet", exc)

    async def _apply(
        self,
        commit: str,
        events: Sequence[Event],
        owner: dict[str, str],
        docs: dict[str, Doc],
        now: datetime,
    ) -> tuple[dict[str, Doc], list[Exception]]:
        """Apply one commit's new events to their profiles, then link identities.

        Each profile is updated on its own: one that fails (returned in the failures)
        never keeps the others from being written.
        """
        grouped: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            grouped[owner[event.visitor_id]].append(event)
        results = await asyncio.gather(
            *(
                self._write(pid, items, docs.get(pid), now, commit)
                for pid, items in grouped.items()
            ),
            return_exceptions=True,
        )
        written: dict[str, Doc] = {}
        failures: list[Exception] = []
        for pid, result in zip(grouped, results, strict=True):
            if isinstance(result, Exception):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                written[pid] = result
                if self.on_profile is not None:
                    # Read-your-writes on this replica: the near-cache holds the new profile.
                    self.on_profile(result)
        for event in events:
            if event.type is EventType.IDENTIFY and event.user_id:
                try:
                    await link(self.database, owner[event.visitor_id], event.user_id, now)
                except Exception as exc:
                    failures.append(exc)
        return written, failures

    async def _insert(
        self,
        collection: AsyncCollection[Doc],
        items: list[tuple[int, Event]],
        outcomes: list[IngestOutcome],
        document: Callable[[Event], Doc],
        tried: Sequence[str] = (),
    ) -> list[tuple[int, Event]]:
        if not items:
            return []
        # Duplicates inside one commit: keep the first.
        unique: list[tuple[int, Event]] = []
        seen: dict[str, str] = {}
        for i, event in items:
            owner = seen.get(event.event_id)
            if owner is None:
                seen[event.event_id] = event.visitor_id
                unique.append((i, event))
            elif owner != event.visitor_id:
                outcomes[i].rejected.append(_taken(event))
            else:
                outcomes[i].duplicates += 1
        duplicates: set[int] = set()
        refused: dict[int, str] = {}
        try:
            await collection.insert_many([document(e) for _, e in unique], ordered=False)
        except BulkWriteError as exc:
            duplicates, refused = _write_errors(exc)
        stored: dict[str, Doc] = {}
        if duplicates:
            ids = [unique[position][1].event_id for position in duplicates]
            found = collection.find({"_id": {"$in": ids}}, {"commit": 1, "visitorId": 1})
            stored = {doc["_id"]: doc async for doc in found}
        if refused:
            EVENTS_REFUSED.labels("database").inc(len(refused))
        new = []
        for position, (i, event) in enumerate(unique):
            if position in refused:
                message = f"the database refused this event: {refused[position]}"
                outcomes[i].rejected.append(Rejection(event, "", message))
            elif position in duplicates:
                earlier = stored.get(event.event_id, {})
                if earlier.get("commit") in tried:
                    # Stored by an earlier, failed attempt at these very events: new to
                    # the client.
                    outcomes[i].accepted += 1
                elif earlier.get("visitorId", event.visitor_id) != event.visitor_id:
                    outcomes[i].rejected.append(_taken(event))
                else:
                    outcomes[i].duplicates += 1
            else:
                outcomes[i].accepted += 1
                new.append((i, event))
        return new

    async def _write(
        self, profile_id: str, events: list[Event], guess: Doc | None, now: datetime, commit: str
    ) -> Doc | None:
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
                current,
                profile_id,
                events,
                now=now,
                half_life_days=self.half_life_days,
                commit=commit,
            )
            if updated is None:  # this commit is already in the profile
                return current
            if self.annotate is not None:
                self.annotate(updated, now)
            if current is None:
                # A new profile starts from the configured consent defaults.
                defaults = {
                    "analytics": self.consent.analytics,
                    "personalization": self.consent.personalization,
                    "source": "default",
                }
                updated["consent"] = {**defaults, **(updated.get("consent") or {})}
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

    async def reconcile(self, *, grace: timedelta = timedelta(seconds=10)) -> int:
        """Apply the events of commits that stored events but did not finish; returns how many.

        A commit that fails is skipped (and tried again next time, after the others),
        its error recorded on its marker, logged once and counted; an outage stops the round.
        """
        cutoff = self.clock() - grace
        applied = 0
        # Commits that failed before go last, so one that always fails never blocks the rest.
        markers = self.pending.find({"at": {"$lte": cutoff}}).sort([("attempts", 1), ("at", 1)])
        for marker in await markers.limit(100).to_list():
            commit = str(marker["_id"])
            try:
                applied += await self._replay(commit)
            except Exception as exc:
                cause = exc.__cause__ if isinstance(exc, CommitIncomplete) else exc
                if not isinstance(cause, Exception):
                    cause = exc
                if is_outage(cause):
                    raise
                EVENT_RECONCILE_FAILURES.labels(type(cause).__name__).inc()
                self.problems.report("a stored commit could not be reconciled", cause)
                error = f"{type(cause).__name__}: {label(cause, 300)}"
                await self.pending.update_one(
                    {"_id": commit},
                    {"$inc": {"attempts": 1}, "$set": {"lastError": error}},
                )
        if applied:
            logger.info("reconciled %d stored events into profiles", applied)
        return applied

    async def _replay(self, commit: str) -> int:
        """Apply what `commit` stored to the profiles that miss it, then drop its marker."""
        events = [Event.from_document(d) async for d in self.events.find({"commit": commit})]
        async for record in self.consent_log.find({"commit": commit}):
            events.append(_consent_event(record))
        now = self.clock()
        owner, _ = await self._canonical({e.visitor_id for e in events})
        _, failures = await self._apply(commit, events, owner, {}, now)
        if failures:
            raise CommitIncomplete(
                f"{len(failures)} profile update(s) of commit {commit} failed"
            ) from failures[0]
        await self.pending.delete_one({"_id": commit})
        return len(events)


def _taken(event: Event) -> Rejection:
    """The event's id names another visitor's event: refused, not a silent duplicate.

    Ids are unique across visitors, and the publishable key is public: an id
    anyone can guess (an order number) could otherwise be taken first by someone
    else, and the real event dropped as a duplicate.
    """
    EVENTS_REFUSED.labels("id_taken").inc()
    return Rejection(
        event,
        "eventId",
        f"event id {event.event_id!r} is already another visitor's event: "
        "ids must be unique across visitors (use a random UUID)",
    )


def _consent_record(event: Event, commit: str) -> Doc:
    record: Doc = {
        "_id": event.event_id,
        "commit": commit,
        "visitorId": event.visitor_id,
        "at": event.timestamp,
        "receivedAt": event.received_at,
        "source": str(event.properties.get("source") or event.context.get("page") or "event"),
    }
    for key in ("analytics", "personalization"):
        if key in event.properties:
            record[key] = event.properties[key]
    return record


def _consent_event(record: Doc) -> Event:
    """The consent event a consent-log record was made from (for reconciliation)."""
    properties: dict[str, Any] = {
        k: record[k] for k in ("analytics", "personalization") if k in record
    }
    properties["source"] = record.get("source", "event")
    return Event(
        event_id=str(record["_id"]),
        type=EventType.CONSENT,
        visitor_id=str(record["visitorId"]),
        timestamp=record["at"],
        received_at=record.get("receivedAt") or record["at"],
        properties=properties,
    )
