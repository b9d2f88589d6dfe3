"""Sticky buckets: a visitor's experiment assignments, kept in their profile.

GrowthBook's sticky bucket documents (`{attributeName, attributeValue,
assignments}`) live in the profile under `stickyBuckets`, keyed by a digest
of `attributeName||attributeValue` (visitor ids may hold dots, which MongoDB
paths cannot). Keeping them in the profile means the one profile read a page
makes already has them, GDPR export and erasure cover them, and an identity
merge carries them over (`profiles.traits.merge_profiles`).

`record` only enqueues; a background task writes each document with one
atomic `$set` per assignment (and `$inc` of the profile's version, so an
ingestion that read the profile before retries on the fresh one). A visitor
without a profile yet gets one holding only the assignments and the default
consent, which reads as a new visitor's until their first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from common.service import Service, Timeout, cancel, seconds
from profiles.metrics import STICKY_BUCKETS_DROPPED, STICKY_BUCKETS_WRITTEN

logger = logging.getLogger(__name__)

FIELD = "stickyBuckets"
#: What an assignment key (`<experiment key>__<bucket version>`) may hold in a MongoDB path.
_ASSIGNMENT_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}__\d{1,6}")


def document_key(attribute: str, value: str) -> str:
    """The profile field under `stickyBuckets` holding the document of `attribute||value`."""
    return hashlib.sha1(f"{attribute}||{value}".encode(), usedforsecurity=False).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """Sticky bucket documents to save in one profile."""

    profile_id: str
    docs: tuple[Mapping[str, Any], ...]


def update_for(docs: tuple[Mapping[str, Any], ...]) -> dict[str, Any] | None:
    """The `$set` of every assignment in `docs` (None when none is storable)."""
    fields: dict[str, Any] = {}
    for doc in docs:
        name, value = doc.get("attributeName"), doc.get("attributeValue")
        assignments = doc.get("assignments")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if not isinstance(assignments, Mapping):
            continue
        prefix = f"{FIELD}.{document_key(name, value)}"
        fields[f"{prefix}.attributeName"] = name
        fields[f"{prefix}.attributeValue"] = value
        for key, variation in assignments.items():
            # Experiment keys are validated when content is parsed; refuse anything else here.
            if isinstance(key, str) and _ASSIGNMENT_KEY.fullmatch(key):
                fields[f"{prefix}.assignments.{key}"] = str(variation)
    return fields or None


class StickyBucketWriter(Service):
    """A bounded queue of sticky bucket documents and the task that saves them in profiles."""

    def __init__(
        self,
        profiles: AsyncCollection[dict[str, Any]],
        *,
        clock: Callable[[], datetime],
        consent: Mapping[str, Any] | None = None,
        max_queue: int = 10_000,
        close_timeout: Timeout = 5.0,
    ) -> None:
        self._profiles = profiles
        self._clock = clock
        self._consent = dict(consent or {})
        self._queue: asyncio.Queue[PendingWrite] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._close_timeout = close_timeout
        self._failing = False

    @property
    def pending(self) -> int:
        """Writes queued and not yet done."""
        return self._queue.qsize()

    async def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sticky-bucket-writer")

    def record(self, profile_id: str, docs: tuple[Mapping[str, Any], ...]) -> None:
        """Queue the documents for `profile_id`; drops (and counts) what does not fit."""
        if not docs:
            return
        if self._closing:
            STICKY_BUCKETS_DROPPED.labels(cause="closed").inc(len(docs))
            return
        try:
            self._queue.put_nowait(PendingWrite(profile_id, docs))
        except asyncio.QueueFull:
            STICKY_BUCKETS_DROPPED.labels(cause="queue_full").inc(len(docs))

    async def flush(self) -> None:
        """Wait until everything queued so far has been written (or dropped)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Write what is queued (for `close_timeout` seconds at most), then stop."""
        self._closing = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), seconds(self._close_timeout))
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self.save(item)
            finally:
                self._queue.task_done()

    async def save(self, item: PendingWrite) -> None:
        """Save one visitor's documents now (one atomic update, creating the profile if needed)."""
        fields = update_for(item.docs)
        if fields is None:
            return
        on_insert: dict[str, Any] = {"createdAt": self._clock(), "traits": {}, "counts": {}}
        if self._consent:
            on_insert["consent"] = {**self._consent, "source": "default"}
        try:
            await self._profiles.update_one(
                {"_id": item.profile_id},
                {"$set": fields, "$inc": {"version": 1}, "$setOnInsert": on_insert},
                upsert=True,
            )
        except PyMongoError as exc:
            STICKY_BUCKETS_DROPPED.labels(cause="error").inc(len(item.docs))
            if not self._failing:
                logger.warning("sticky buckets not saved, MongoDB refused: %s", exc)
            self._failing = True
            return
        except Exception:
            STICKY_BUCKETS_DROPPED.labels(cause="error").inc(len(item.docs))
            logger.exception("sticky buckets not saved: unexpected error")
            return
        if self._failing:
            logger.info("sticky bucket writes recovered")
        self._failing = False
        STICKY_BUCKETS_WRITTEN.inc(len(item.docs))
