"""The content cache in front of a CMS adapter: TTL plus single flight.

Pages are cached as parsed `ParsedPage` objects under `page:<cms>:<slug>`.
Concurrent misses on one key share one upstream fetch. Unknown slugs are
cached briefly too, so a crawler cannot hammer the CMS with bad slugs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

from blocks.parse import ParsedPage
from cms_adapters.base import CMSAdapter
from cms_adapters.errors import ContentNotFound

logger = logging.getLogger(__name__)

_MISSING = object()
# aiocache cannot tell a stored None from a miss, so not-found is a marker value.
_NOT_FOUND = "tessera:not-found"


class ContentCache:
    """Serve pages from an aiocache backend, fetching misses once per key."""

    def __init__(
        self,
        adapter: CMSAdapter,
        cache: Any,
        *,
        ttl: float = 60.0,
        not_found_ttl: float = 5.0,
    ) -> None:
        self.adapter = adapter
        self.cache = cache
        self.ttl = ttl
        self.not_found_ttl = not_found_ttl
        self.upstream_calls = 0
        self._inflight: dict[str, asyncio.Task[ParsedPage | None]] = {}

    def _key(self, slug: str) -> str:
        return f"page:{self.adapter.name}:{slug}"

    async def get_page(self, slug: str) -> ParsedPage:
        """The parsed page; raises ContentNotFound or another CMSError."""
        key = self._key(slug)
        cached = await self.cache.get(key, default=_MISSING)
        if cached is _MISSING:
            cached = await self._fetch_once(key, slug)
        if cached is None or cached == _NOT_FOUND:
            raise ContentNotFound(self.adapter.name, f"no page with slug {slug!r}", entry=slug)
        assert isinstance(cached, ParsedPage)
        return cached

    async def _fetch_once(self, key: str, slug: str) -> ParsedPage | None:
        # The fetch runs in its own task: a caller that is cancelled (a client
        # gone away) stops waiting, but never cancels the fetch others share.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, slug), name=f"fetch {key}")
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch(self, key: str, slug: str) -> ParsedPage | None:
        self.upstream_calls += 1
        try:
            parsed = await self.adapter.fetch_page(slug)
        except ContentNotFound:
            await self.cache.set(key, _NOT_FOUND, ttl=self.not_found_ttl)
            return None
        for problem in parsed.problems:
            logger.warning(
                "content problem in %s page %r, left out: %s", self.adapter.name, slug, problem
            )
        # A new version per fetch: responses derived from older content never match it.
        parsed = dataclasses.replace(parsed, version=uuid.uuid4().hex)
        await self.cache.set(key, parsed, ttl=self.ttl)
        return parsed

    async def invalidate(self, slug: str) -> None:
        """Forget the cached page so the next request fetches it again."""
        await self.cache.delete(self._key(slug))
