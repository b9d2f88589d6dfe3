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

The cache is a bounded LRU sized in bytes of memory: each profile counts what
its decoded dictionaries take (`footprint`), about eight times its BSON size.
Keys are the visitor ids asked for; a merged visitor's key holds the profile
it merged into, and a change to that profile updates every key that points
at it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from common.service import Service, cancel

logger = logging.getLogger(__name__)

Doc = dict[str, Any]
#: What an absent profile (a new visitor) costs in the cache.
ABSENT_BYTES = 64
#: Profiles are at most this deep once validated; deeper is counted by the container alone.
_MAX_DEPTH = 32
#: MongoDB's ChangeStreamHistoryLost and friends: the resume token is gone.
_HISTORY_LOST = {136, 280, 286}


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached profile (None: the visitor has none) and the id it resolved to."""

    profile: Doc | None
    resolved_id: str | None
    size: int


def footprint(value: Any, _depth: int = 0) -> int:
    """About the bytes `value` takes in memory: the object and everything it contains."""
    size = sys.getsizeof(value)
    if _depth >= _MAX_DEPTH:
        return size
    if isinstance(value, dict):
        for key, item in value.items():
            size += footprint(key, _depth + 1) + footprint(item, _depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            size += footprint(item, _depth + 1)
    return size


def _size(profile: Mapping[str, Any] | None) -> int:
    # Memory, not BSON: a decoded profile takes about 8 times its BSON size (975 bytes
    # against 8,107 on the bench's population), so a BSON budget of 64 MB took 530 MB.
    return ABSENT_BYTES if profile is None else footprint(profile)


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

    def put(self, visitor_id: str, profile: Doc | None) -> None:
        """Keep what a read of `visitor_id` returned (None: no profile yet)."""
        if self.max_bytes <= 0:
            return
        self._drop(visitor_id)
        resolved = str(profile["_id"]) if profile is not None and "_id" in profile else None
        entry = Entry(profile, resolved, _size(profile))
        if entry.size > self.max_bytes:
            return
        self._entries[visitor_id] = entry
        self.bytes += entry.size
        if resolved is not None:
            self._keys_of.setdefault(resolved, set()).add(visitor_id)
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def update(self, profile: Doc) -> None:
        """A profile was written: refresh every key holding it, and its own key if cached."""
        profile_id = str(profile.get("_id"))
        merged = profile.get("mergedInto") or profile.get("mergingInto")
        keys = set(self._keys_of.get(profile_id, ()))
        if profile_id in self._entries:
            keys.add(profile_id)
        for key in keys:
            if merged is not None:
                # The visitor now reads another profile: the next read follows the merge.
                self._drop(key)
            else:
                self.put(key, profile)

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
        self.collection = collection
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
            while True:
                change = await stream.try_next()
                if change is None:
                    self._token = stream.resume_token
                    continue
                self._token = stream.resume_token
                self._apply(change)

    def _apply(self, change: Mapping[str, Any]) -> None:
        self.changes += 1
        operation = change.get("operationType")
        if operation in ("insert", "replace", "update"):
            document = change.get("fullDocument")
            if isinstance(document, dict):
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
