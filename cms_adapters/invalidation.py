"""Invalidation after a publish: the content cache, the other replicas, the edge cache.

`Invalidator.publish(changed)` drops the changed pages from the (shared)
content cache, tells every other replica over Redis pub/sub so they drop
in-flight fetches of the old content (without Redis, through a change stream
on MongoDB's `invalidations`, which every process shares: `serve --workers
N` keeps a content cache per worker, each then cleared by the message; a
process whose channel was down forgets everything it kept), and hands
surrogate keys to a
`PurgeSink` (cms_adapters/purge.py: Varnish, Fastly, Cloudflare; by default
it only logs them).

The edge purge never holds a webhook past `purge_deadline` seconds (2 by
default): it runs as a task, `publish` waits for it that long, and a purge
still retrying after that goes on in the background (counted in
`tessera_purge_deferred`). A purge that fails is logged and counted
(`tessera_purge_failures`), never raised: the content cache is already
invalidated, and an edge copy that missed its purge expires with its
s-maxage.

Surrogate keys: `page:<slug>` per changed page, `block:<id>` per changed
block, and `cms:<name>` when everything may have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pymongo
from prometheus_client import Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from cms_adapters.base import ChangedKeys
from cms_adapters.content_cache import ContentCache
from cms_adapters.purge import LoggingPurgeSink as LoggingPurgeSink
from cms_adapters.purge import PurgeError
from cms_adapters.purge import PurgeSink as PurgeSink
from common.json_input import loads
from common.service import Service, cancel

logger = logging.getLogger(__name__)

CHANNEL = "tessera:invalidate"

PURGE_DEFERRED = Counter(
    "tessera_purge_deferred",
    "Publish webhooks answered before their edge purge finished (it went on in the background).",
)


def surrogate_keys(cms: str, changed: ChangedKeys) -> list[str]:
    """The edge-cache surrogate keys for a change."""
    if changed.everything:
        return [f"cms:{cms}"]
    return [f"page:{slug}" for slug in sorted(changed.pages)] + [
        f"block:{block}" for block in sorted(changed.blocks)
    ]


def encode(origin: str, cms: str, changed: ChangedKeys) -> str:
    """The pub/sub message for a change."""
    return json.dumps(
        {
            "origin": origin,
            "cms": cms,
            "pages": sorted(changed.pages),
            "blocks": sorted(changed.blocks),
            "everything": changed.everything,
        }
    )


def decode(message: str | bytes) -> tuple[str, str, ChangedKeys] | None:
    """Parse a pub/sub message; None when it is not one of ours."""
    try:
        data: Any = loads(message, strict=False)
        changed = ChangedKeys(
            pages=frozenset(str(s) for s in data["pages"]),
            blocks=frozenset(str(b) for b in data["blocks"]),
            everything=bool(data["everything"]),
        )
        return str(data["origin"]), str(data["cms"]), changed
    except (ValueError, KeyError, TypeError):
        return None


class Invalidator(Service):
    """Apply a change here, broadcast it to the other replicas, purge the edge."""

    def __init__(
        self,
        content: ContentCache,
        sink: PurgeSink | None = None,
        *,
        redis_url: str | None = None,
        channel: str = CHANNEL,
        purge_deadline: float = 2.0,
        collection: AsyncCollection[dict[str, Any]] | None = None,
    ) -> None:
        self.content = content
        # Without Redis the processes still share MongoDB: messages go through it.
        self.collection = collection if redis_url is None else None
        self.sink: PurgeSink = sink or LoggingPurgeSink()
        self.purge_deadline = purge_deadline
        self._purges: set[asyncio.Task[None]] = set()
        self.redis_url = redis_url
        self.channel = channel
        self.origin = uuid.uuid4().hex
        self.received = 0
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._opened_before = False
        self._delay = 0.5

    async def start(self, *, wait: float = 2.0) -> None:
        """Listen for other replicas' invalidations (reconnecting while the channel is down)."""
        if self.redis_url is not None:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(self.redis_url)
            session = self._redis_session
        elif self.collection is not None:
            session = self._mongo_session
        else:
            return
        self._listener = asyncio.create_task(self._listen(session), name="invalidation listener")
        try:
            async with asyncio.timeout(wait):
                await self._subscribed.wait()
        except TimeoutError:
            logger.error("invalidation channel not subscribed yet; retrying in the background")

    async def _listen(self, session: Callable[[], Awaitable[None]]) -> None:
        """Run `session` (one subscription, until it breaks) again and again, with backoff."""
        while True:
            try:
                await session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "invalidation channel lost (%s); reconnecting in %.1f s", exc, self._delay
                )
                self._subscribed.clear()
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, 30.0)

    async def _opened(self) -> None:
        """The channel is (again) subscribed: forget what may have been missed meanwhile."""
        if self._opened_before:
            await self._missed()
        self._opened_before = True
        self._delay = 0.5
        self._subscribed.set()

    async def _redis_session(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            await self._opened()
            async for message in pubsub.listen():
                await self._on_message(message.get("data"))
        finally:
            await pubsub.aclose()

    async def _mongo_session(self) -> None:
        """Apply the invalidations other processes insert into `collection` (a change stream)."""
        assert self.collection is not None
        # maxAwaitTimeMS: a quiet stream waits on the server, not in a busy loop here.
        async with await self.collection.watch(max_await_time_ms=500) as stream:
            await self._opened()
            # A closed stream answers at once, without waiting: it must not be polled.
            while stream.alive:
                change = await stream.try_next()
                if change is None:
                    continue
                operation = change.get("operationType")
                document = change.get("fullDocument") or {}
                if operation == "insert" and isinstance(document.get("message"), str):
                    await self._on_message(document["message"])
                elif operation in ("drop", "dropDatabase", "rename", "invalidate"):
                    break
        raise PyMongoError("the invalidation stream closed")

    async def _missed(self) -> None:
        """Forget what this process kept: messages sent while the channel was down are lost."""
        await self.content.apply(ChangedKeys(everything=True), remote=True)

    async def _on_message(self, data: Any) -> None:
        decoded = decode(data) if isinstance(data, str | bytes) else None
        if decoded is None:
            return
        origin, cms, changed = decoded
        if origin == self.origin or cms != self.content.adapter.name:
            return
        self.received += 1
        await self.content.apply(changed, remote=True)

    async def publish(self, changed: ChangedKeys) -> list[str]:
        """Invalidate `changed` everywhere; returns the surrogate keys purged."""
        await self.content.apply(changed)
        message = encode(self.origin, self.content.adapter.name, changed)
        if self._redis is not None:
            await self._redis.publish(self.channel, message)
        elif self.collection is not None:
            # Bounded: a hung MongoDB answers the webhook 503 (the CMS retries), not a hang.
            with pymongo.timeout(2.0):
                await self.collection.insert_one({"message": message, "at": datetime.now(UTC)})
        keys = surrogate_keys(self.content.adapter.name, changed)
        await self.purge(keys)
        return keys

    async def purge(self, keys: list[str]) -> None:
        """Purge `keys` from the edge, waiting at most `purge_deadline` seconds for it."""
        task = asyncio.create_task(self._purge(keys), name="edge purge")
        self._purges.add(task)
        task.add_done_callback(self._purges.discard)
        # asyncio.wait neither cancels the task on timeout nor when our caller is
        # cancelled (a webhook client hanging up): the purge always runs its course.
        done, _ = await asyncio.wait({task}, timeout=self.purge_deadline)
        if not done:
            PURGE_DEFERRED.inc()
            logger.warning(
                "edge purge of %s still running after %.1f s; continuing in the background",
                " ".join(keys),
                self.purge_deadline,
            )

    async def _purge(self, keys: list[str]) -> None:
        try:
            await self.sink.purge(keys)
        except PurgeError as exc:
            logger.error("edge purge of %s failed: %s", " ".join(keys), exc)
        except Exception:
            logger.exception("edge purge of %s failed unexpectedly", " ".join(keys))

    async def aclose(self) -> None:
        """Let running purges finish (for up to `purge_deadline`), then stop listening."""
        if self._purges:
            await asyncio.wait(set(self._purges), timeout=max(self.purge_deadline, 0.1))
            for task in set(self._purges):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Cancelled again until it stops (pymongo may swallow one while MongoDB hangs).
        listener, self._listener = self._listener, None
        await cancel(listener)
        if self._redis is not None:
            await self._redis.aclose()
