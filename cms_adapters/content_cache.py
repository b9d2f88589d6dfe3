"""The content cache in front of a CMS adapter: keeps pages up when the CMS is slow or down.

Pages are cached as `Entry(page, fetched_at)` under `page:<cms>:<slug>` in an
aiocache backend (memory, or Redis shared by every replica). For an entry of
age `a`:

- `a < ttl`: fresh, served as is (a hit);
- `a < ttl + stale_while_revalidate`: served stale at once while one
  background fetch refreshes it;
- older: fetched again; if the CMS fails (unavailable, rate limited, refused,
  malformed content) and `a < ttl + stale_if_error`, the stale copy is served.

An unknown slug is cached as `Entry(None, ...)` for `not_found_ttl` seconds.

With a shared backend (Redis), each process also keeps the entries it read
while they are fresh (`local_entries` of them, least recently used out), so
a page request neither waits for Redis nor unpickles the page again, and
what is derived once per parsed page (block scopes, templated fields) stays
derived. An invalidation clears them here, and the invalidator's pub/sub
message clears them on every other replica; a replica that missed the
message serves its copy until it is `ttl` old, as long as a fresh entry lasts.

Concurrent fetches of one key share one upstream call (single flight), and a
caller that goes away never cancels a fetch others wait on. An invalidation
while a fetch is in flight keeps that fetch's (older) result out of the cache.

`ContentCache.metrics` counts hits, misses, stale serves and upstream latency;
`metrics.prometheus(cms)` renders them for a metrics endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, CMSAdapter
from cms_adapters.errors import CMSError, ContentNotFound
from cms_adapters.metrics import FetchOutcome, observe_fetch
from common.service import Service

logger = logging.getLogger(__name__)

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached answer: the page, or None for "no such page", and when it was fetched."""

    page: ParsedPage | None
    fetched_at: float


@dataclass(slots=True)
class CacheMetrics:
    """Counters for the metrics endpoint (monotonic, per process)."""

    hits: int = 0
    misses: int = 0
    stale_served: int = 0
    stale_if_error_served: int = 0
    not_found_hits: int = 0
    upstream_calls: int = 0
    upstream_errors: int = 0
    refresh_errors: int = 0
    backend_errors: int = 0
    invalidations: int = 0
    upstream_seconds_total: float = 0.0
    upstream_seconds_max: float = 0.0
    upstream_seconds: list[float] = field(default_factory=list, repr=False)

    def observe_upstream(self, seconds: float) -> None:
        """Record one upstream call's latency (the last 1000 are kept for quantiles)."""
        self.upstream_seconds_total += seconds
        self.upstream_seconds_max = max(self.upstream_seconds_max, seconds)
        self.upstream_seconds.append(seconds)
        del self.upstream_seconds[:-1000]

    def prometheus(self, cms: str) -> str:
        """The counters in Prometheus text format, ready for a `/metrics` endpoint."""
        label = f'{{cms="{cms}"}}'
        lines = []
        for name in (
            "hits",
            "misses",
            "stale_served",
            "stale_if_error_served",
            "not_found_hits",
            "upstream_calls",
            "upstream_errors",
            "refresh_errors",
            "backend_errors",
            "invalidations",
        ):
            metric = f"tessera_content_cache_{name}_total"
            lines += [f"# TYPE {metric} counter", f"{metric}{label} {getattr(self, name)}"]
        metric = "tessera_content_upstream_seconds"
        lines.append(f"# TYPE {metric} summary")
        recent = sorted(self.upstream_seconds)
        for quantile in (0.5, 0.9, 0.99):
            value = recent[min(len(recent) - 1, int(len(recent) * quantile))] if recent else 0.0
            lines.append(f'{metric}{{cms="{cms}",quantile="{quantile}"}} {value:.6f}')
        lines.append(f"{metric}_sum{label} {self.upstream_seconds_total:.6f}")
        lines.append(f"{metric}_count{label} {self.upstream_calls}")
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict[str, float]:
        """Every counter as a flat dict (latency list left out)."""
        return {
            name: getattr(self, name)
            for name in (f.name for f in dataclasses.fields(self))
            if name != "upstream_seconds"
        }


class ContentCache(Service):
    """Serve pages from an aiocache backend with SWR, stale-if-error and single flight."""

    def __init__(
        self,
        adapter: CMSAdapter,
        cache: Any,
        *,
        ttl: float = 60.0,
        stale_while_revalidate: float = 300.0,
        stale_if_error: float = 86400.0,
        not_found_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
        local_entries: int = 1000,
    ) -> None:
        self.adapter = adapter
        self.cache = cache
        #: Whether other processes share the backend (Redis), or it is this one's own.
        self.shared = getattr(cache, "NAME", "") == "redis"
        # The memory backend holds the parsed pages themselves: nothing to keep twice.
        self.local_entries = local_entries if self.shared else 0
        self._local: dict[str, Entry] = {}
        self.ttl = ttl
        self.stale_while_revalidate = stale_while_revalidate
        self.stale_if_error = max(stale_if_error, stale_while_revalidate)
        self.not_found_ttl = not_found_ttl
        self.clock = clock
        self.metrics = CacheMetrics()
        self._inflight: dict[str, asyncio.Task[Entry]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._generation: dict[str, int] = {}
        self._epoch = 0

    @property
    def upstream_calls(self) -> int:
        """How many times the adapter was asked for a page."""
        return self.metrics.upstream_calls

    @property
    def namespace(self) -> str:
        """The key prefix of this CMS's pages."""
        return f"page:{self.adapter.name}"

    def _key(self, slug: str) -> str:
        return f"{self.namespace}:{slug}"

    async def get_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The parsed page; raises ContentNotFound or another CMSError.

        Previews (drafts) are never cached: each is one upstream fetch.
        """
        if preview:
            return (await self._fetch_upstream(slug, preview=True)) or self._not_found(slug)
        key = self._key(slug)
        entry = await self._read(key)
        if entry is None:
            self.metrics.misses += 1
            return self._page(slug, await self._fetch_once(key, slug))
        age = self.clock() - entry.fetched_at
        if entry.page is None:
            if age < self.not_found_ttl:
                self.metrics.not_found_hits += 1
                return self._not_found(slug)
        elif age < self.ttl:
            self.metrics.hits += 1
            return entry.page
        elif age < self.ttl + self.stale_while_revalidate:
            self.metrics.stale_served += 1
            self._revalidate(key, slug)
            return entry.page
        self.metrics.misses += 1
        try:
            fresh = await self._fetch_once(key, slug)
        except ContentNotFound:
            raise
        except CMSError as exc:
            if entry.page is None or age >= self.ttl + self.stale_if_error:
                raise
            self.metrics.stale_if_error_served += 1
            logger.warning("serving stale %s (%.0f s old): %s", key, age, exc)
            return entry.page
        return self._page(slug, fresh)

    async def scan_page(self, slug: str) -> ParsedPage:
        """The page as cached at any age, fetched only when not cached at all.

        For background scans of every page (the experiment sweep): reading
        each page through `get_page` would refresh every stale one from the
        CMS at each scan, many times what visitors' requests cause.
        """
        key = self._key(slug)
        # Not kept in process: a scan of a large site would evict the pages visitors read.
        entry = await self._read(key, keep=False)
        if entry is None:
            self.metrics.misses += 1
            return self._page(slug, await self._fetch_once(key, slug))
        return self._page(slug, entry)

    def _not_found(self, slug: str) -> ParsedPage:
        raise ContentNotFound(self.adapter.name, f"no page with slug {slug!r}", entry=slug)

    def _page(self, slug: str, entry: Entry) -> ParsedPage:
        return entry.page if entry.page is not None else self._not_found(slug)

    def _fresh(self, entry: Entry) -> bool:
        keep = self.not_found_ttl if entry.page is None else self.ttl
        return self.clock() - entry.fetched_at < keep

    def _keep_local(self, key: str, entry: Entry) -> None:
        if not self.local_entries:
            return
        self._local[key] = entry
        while len(self._local) > self.local_entries:
            del self._local[next(iter(self._local))]

    async def _read(self, key: str, *, keep: bool = True) -> Entry | None:
        # Popped: a fresh entry goes back last (most recently used); a stale one is
        # read from Redis again, where another replica may have refreshed it.
        local = self._local.pop(key, None)
        if local is not None and self._fresh(local):
            self._local[key] = local
            return local
        generation = (self._epoch, self._generation.get(key, 0))
        try:
            value = await self.cache.get(key, default=_MISSING)
        except Exception as exc:  # a cache outage must not take pages down
            self.metrics.backend_errors += 1
            logger.warning("content cache read failed for %s: %s", key, exc)
            return None
        if not isinstance(value, Entry):
            return None
        if (
            keep
            and generation == (self._epoch, self._generation.get(key, 0))
            and self._fresh(value)
        ):
            # Not when an invalidation came while Redis answered: that copy is outdated.
            self._keep_local(key, value)
        return value

    async def _write(self, key: str, entry: Entry) -> None:
        keep = self.not_found_ttl if entry.page is None else self.ttl + self.stale_if_error
        try:
            await self.cache.set(key, entry, ttl=keep)
        except Exception as exc:
            self.metrics.backend_errors += 1
            logger.warning("content cache write failed for %s: %s", key, exc)

    def _revalidate(self, key: str, slug: str) -> None:
        if key in self._inflight:
            return
        task = asyncio.create_task(self._refresh(key, slug), name=f"revalidate {key}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, key: str, slug: str) -> None:
        try:
            await self._fetch_once(key, slug)
        except CMSError as exc:
            self.metrics.refresh_errors += 1
            logger.warning("background refresh of %s failed, stale copy kept: %s", key, exc)

    async def _fetch_once(self, key: str, slug: str) -> Entry:
        # The fetch runs in its own task: a caller that is cancelled (a client
        # gone away) stops waiting, but never cancels the fetch others share.
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, slug), name=f"fetch {key}")
            self._inflight[key] = task

            def forget(done: asyncio.Task[Entry]) -> None:
                if self._inflight.get(key) is done:
                    del self._inflight[key]

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _fetch_upstream(self, slug: str, *, preview: bool = False) -> ParsedPage | None:
        self.metrics.upstream_calls += 1
        started = time.perf_counter()
        outcome: FetchOutcome = "error"
        try:
            parsed = await self.adapter.fetch_page(slug, preview=preview)
            outcome = "ok"
        except ContentNotFound:
            outcome = "not_found"
            return None
        except CMSError:
            self.metrics.upstream_errors += 1
            raise
        finally:
            self.metrics.observe_upstream(time.perf_counter() - started)
            observe_fetch(self.adapter.name, outcome, time.perf_counter() - started)
        for problem in parsed.problems:
            logger.warning(
                "content problem in %s page %r, left out: %s", self.adapter.name, slug, problem
            )
        # A new version per fetch: responses derived from older content never match it.
        return dataclasses.replace(parsed, version=uuid.uuid4().hex)

    async def _fetch(self, key: str, slug: str) -> Entry:
        generation = (self._epoch, self._generation.get(key, 0))
        entry = Entry(await self._fetch_upstream(slug), self.clock())
        if generation == (self._epoch, self._generation.get(key, 0)):
            await self._write(key, entry)
        return entry

    def _forget_local(self, key: str | None, *, count: bool = True) -> None:
        """Keep in-flight fetches and reads that predate an invalidation out of the cache."""
        if count:
            self.metrics.invalidations += 1
        if key is None:
            self._epoch += 1
            self._inflight.clear()
            self._local.clear()
        else:
            self._generation[key] = self._generation.get(key, 0) + 1
            self._inflight.pop(key, None)
            self._local.pop(key, None)

    async def invalidate(self, slug: str) -> None:
        """Forget the cached page so the next request fetches it again."""
        key = self._key(slug)
        self._forget_local(key)
        await self.cache.delete(key)
        # Again: a read that began before the delete reached Redis got the old entry.
        self._forget_local(key, count=False)

    async def invalidate_all(self) -> None:
        """Forget every cached page of this CMS."""
        self._forget_local(None)
        # Redis clears `<namespace>:*`; the memory backend clears by plain prefix.
        await self.cache.clear(namespace=self.namespace if self.shared else f"{self.namespace}:")
        self._forget_local(None, count=False)  # reads that raced the clear

    async def apply(self, changed: ChangedKeys, *, remote: bool = False) -> None:
        """Invalidate what a webhook changed.

        A changed block may be used by any page, so it invalidates every page.
        With `remote=True` another process took the webhook and already
        deleted the entries of a shared backend (Redis): only this process's
        state is reset then. A backend of this process's own is cleared either way.
        """
        local_only = remote and self.shared
        if changed.everything or changed.blocks:
            if local_only:
                self._forget_local(None)
            else:
                await self.invalidate_all()
            return
        for slug in sorted(changed.pages):
            if local_only:
                self._forget_local(self._key(slug))
            else:
                await self.invalidate(slug)

    async def aclose(self) -> None:
        """Cancel background refreshes (at shutdown)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
