"""Recently read profiles kept in process, kept fresh by ingestion and a change stream.

A returning visitor's page should not wait on MongoDB: their profile is here
after the first read. It stays correct because every write reaches it:

- the gateway's own ingestion hands each profile it writes to `update`
  (read-your-writes on the replica that took the event, at once);
- `ProfileFeed` follows a MongoDB change stream on `profiles` and applies
  every insert, replace, update and delete (other replicas, other writers),
  resuming after its last token when the stream breaks.

While the feed is down, entries are only *possibly* fresh: the reader then
asks MongoDB first and uses an entry only as a stale fallback. A feed that
cannot resume (its history is gone) clears the cache.

Each profile is kept as its BSON document, and decoded for each read. Decoded
dictionaries take about eight times the BSON (a typical visitor: 960 bytes of
BSON, 8 KB of dictionaries), so the same memory holds eight times as many
visitors, a long-lived heap of millions of small objects does not slow every
garbage collection, and a reader can never alter the cached copy. A read pays
for it with the decoding, about 20 µs for a typical profile.

The cache is a bounded LRU sized in bytes of memory: each entry counts its
document and what keeping it costs (`ENTRY_BYTES`). Keys are the visitor ids
asked for; a merged visitor's key holds the profile it merged into, and a
change to that profile updates every key that points at it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from common.service import Service, cancel

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
#: What keeping one entry costs besides its document: the entry, its key, the LRU's
#: links and the alias index (measured with tracemalloc by the unit tests).
ENTRY_BYTES = 500
#: Decoded as `open_database`'s client decodes: timezone-aware datetimes.
_CODEC: CodecOptions[Doc] = CodecOptions(tz_aware=True)
#: The change stream's documents, left undecoded: the cache keeps their BSON as it came.
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
#: MongoDB's ChangeStreamHistoryLost and friends: the resume token is gone.
_HISTORY_LOST = {136, 280, 286}


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached profile's BSON (None: the visitor has none) and the id it resolved to."""

    document: bytes | None
    resolved_id: str | None
    size: int

    @property
    def profile(self) -> Doc | None:
        """The profile, decoded afresh for this read (None: the visitor has none)."""
        return None if self.document is None else bson.decode(self.document, _CODEC)


def _encode(profile: Mapping[str, Any]) -> bytes:
    if isinstance(profile, RawBSONDocument):
        return bytes(profile.raw)
    return bson.encode(profile)


class NearCache:
    """A bounded in-process LRU of profiles by visitor id, sized by bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        #: Profile id → the keys whose entry holds that profile (aliases after merges).
        self._keys_of: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, visitor_id: str) -> Entry | None:
        """The entry for `visitor_id`, most recently used now."""
        entry = self._entries.get(visitor_id)
        if entry is not None:
            self._entries.move_to_end(visitor_id)
        return entry

    def put(self, visitor_id: str, profile: Mapping[str, Any] | None) -> None:
        """Keep what a read of `visitor_id` returned (None: no profile yet)."""
        if self.max_bytes <= 0:
            return
        if profile is None:
            self._keep(visitor_id, None, None)
        else:
            resolved = str(profile["_id"]) if "_id" in profile else None
            self._keep(visitor_id, _encode(profile), resolved)

    def update(self, profile: Mapping[str, Any]) -> None:
        """A profile was written: refresh every key holding it, and its own key if cached."""
        profile_id = str(profile.get("_id"))
        merged = profile.get("mergedInto") or profile.get("mergingInto")
        keys = set(self._keys_of.get(profile_id, ()))
        if profile_id in self._entries:
            keys.add(profile_id)
        if not keys:
            return
        if merged is not None:
            # The visitor now reads another profile: the next read follows the merge.
            for key in keys:
                self._drop(key)
            return
        document = _encode(profile)  # once for every alias
        for key in keys:
            self._keep(key, document, profile_id)

    def _keep(self, visitor_id: str, document: bytes | None, resolved: str | None) -> None:
        if self.max_bytes <= 0:
            return
        self._drop(visitor_id)
        size = ENTRY_BYTES + len(visitor_id) + (0 if document is None else len(document))
        if size > self.max_bytes:
            return
        self._entries[visitor_id] = Entry(document, resolved, size)
        self.bytes += size
        if resolved is not None:
            self._keys_of.setdefault(resolved, set()).add(visitor_id)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def remove(self, profile_id: str) -> None:
        """A profile was deleted (an erasure): forget every key holding it."""
        for key in set(self._keys_of.get(profile_id, ())) | {profile_id}:
            self._drop(key)

    def clear(self) -> None:
        """Forget everything (the feed lost track of changes)."""
        self._entries.clear()
        self._keys_of.clear()
        self.bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry.size
        if entry.resolved_id is not None:
            keys = self._keys_of.get(entry.resolved_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[entry.resolved_id]


class ProfileFeed(Service):
    """Follow the `profiles` change stream into a `NearCache` (see the module docstring)."""

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        cache: NearCache,
        *,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
    ) -> None:
        # Undecoded: the cache keeps each changed profile's BSON as the stream delivers it.
        self.collection: AsyncCollection[RawBSONDocument] = collection.with_options(
            codec_options=RAW
        )
        self.cache = cache
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.healthy = False
        self.changes = 0
        self.restarts = 0
        self._token: Mapping[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Open the stream; wait briefly for it, so early writes are not missed."""
        self._task = asyncio.create_task(self._run(), name="profile-feed")
        try:
            await asyncio.wait_for(self._ready.wait(), 2.0)
        except TimeoutError:
            logger.warning("the profile change stream is not open yet; reads go to MongoDB")

    async def aclose(self) -> None:
        """Stop following the stream."""
        task, self._task = self._task, None
        await cancel(task)
        self.healthy = False

    async def _run(self) -> None:
        delay = self.retry_initial
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    logger.warning("profile change stream broke, resuming: %s", exc)
                self.healthy = False
                if isinstance(exc, OperationFailure) and exc.code in _HISTORY_LOST:
                    # What changed meanwhile is unknowable: start over from an empty cache.
                    logger.warning("profile change stream cannot resume; near-cache cleared")
                    self._token = None
                    self.cache.clear()
                self.restarts += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
            else:
                delay = self.retry_initial

    async def _follow(self) -> None:
        # maxAwaitTimeMS: a quiet stream waits on the server, not in a busy loop here.
        options: dict[str, Any] = {"full_document": "updateLookup", "max_await_time_ms": 500}
        if self._token is not None:
            options["resume_after"] = self._token
        async with await self.collection.watch(**options) as stream:
            if not self.healthy and self._token is None:
                # A fresh stream: entries cached before it opened may have missed writes.
                self.cache.clear()
            self.healthy = True
            self._ready.set()
            # A closed stream answers at once, without waiting: it must not be polled.
            while stream.alive:
                change = await stream.try_next()
                if change is None:
                    self._token = stream.resume_token
                    continue
                self._token = stream.resume_token
                self._apply(change)
        raise PyMongoError("the profile change stream closed")

    def _apply(self, change: Mapping[str, Any]) -> None:
        self.changes += 1
        operation = change.get("operationType")
        if operation in ("insert", "replace", "update"):
            document = change.get("fullDocument")
            if isinstance(document, Mapping):
                self.cache.update(document)
            else:  # updated, then deleted before the lookup
                key = change.get("documentKey", {}).get("_id")
                if key is not None:
                    self.cache.remove(str(key))
        elif operation == "delete":
            key = change.get("documentKey", {}).get("_id")
            if key is not None:
                self.cache.remove(str(key))
        elif operation in ("drop", "dropDatabase", "rename", "invalidate"):
            self.cache.clear()
            self._token = None
            raise PyMongoError(f"the profiles collection saw {operation}")
