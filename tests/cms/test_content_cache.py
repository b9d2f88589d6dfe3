"""The content cache, against every backend (memory and a real Redis).

Single flight, TTL, stale-while-revalidate, stale-if-error, negative cache,
invalidation (with in-flight fetches), versions, metrics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiocache import Cache

from blocks.parse import ParsedPage, parse_page
from cms_adapters.base import ChangedKeys, CMSAdapter
from cms_adapters.cache_backend import close_cache, open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.errors import (
    CMSRateLimited,
    CMSUnavailable,
    ContentNotFound,
    MalformedContent,
)


def parsed(
    slug: str, heading: str = "Hello", extra_variant: dict[str, Any] | None = None
) -> ParsedPage:
    variants: list[dict[str, Any]] = [{"id": "default", "fields": {"heading": heading}}]
    if extra_variant is not None:
        variants.append(extra_variant)
    return parse_page(
        {
            "slug": slug,
            "title": slug,
            "blocks": [{"id": "hero", "type": "hero", "variants": variants}],
        }
    )


def heading(page: ParsedPage) -> Any:
    return page.page.blocks[0].variants[0].fields["heading"]


class CountingAdapter(CMSAdapter):
    """Serves pages from a dict, counts calls, and can hold them at a gate or fail."""

    def __init__(self, pages: dict[str, ParsedPage], name: str = "fake") -> None:
        self.name = name
        self.pages = pages
        self.calls = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        if slug not in self.pages:
            raise ContentNotFound(self.name, "no such page", entry=slug)
        return self.pages[slug]

    async def list_pages(self) -> list[str]:
        return sorted(self.pages)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def adapter(cms_name: str) -> CountingAdapter:
    return CountingAdapter({"home": parsed("home"), "about": parsed("about")}, name=cms_name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(adapter: CountingAdapter, cache: Any, clock: FakeClock, **options: Any) -> ContentCache:
    options = {"ttl": 60, "stale_while_revalidate": 30, "stale_if_error": 600, **options}
    return ContentCache(adapter, cache, clock=clock, **options)


async def upstream_entered(adapter: CountingAdapter) -> None:
    async with asyncio.timeout(2):
        await adapter.entered.wait()
    await asyncio.sleep(0.02)  # let every other task reach the held upstream call


async def settle(content: ContentCache) -> None:
    """Wait for background refreshes to finish."""
    async with asyncio.timeout(2):
        while content._background:
            await asyncio.gather(*content._background, return_exceptions=True)


async def test_miss_then_hit(adapter: CountingAdapter, cache: Any, clock: FakeClock) -> None:
    content = make(adapter, cache, clock)
    first = await content.get_page("home")
    second = await content.get_page("home")
    assert first.page == adapter.pages["home"].page
    assert second.version == first.version
    assert second.page == first.page
    assert adapter.calls == 1
    assert content.metrics.misses == 1
    assert content.metrics.hits == 1


async def test_distinct_slugs_and_cms_names_are_distinct_entries(
    cache: Any, clock: FakeClock, cms_name: str
) -> None:
    one = CountingAdapter({"home": parsed("home", "one"), "x": parsed("x")}, name=f"{cms_name}a")
    two = CountingAdapter({"home": parsed("home", "two")}, name=f"{cms_name}b")
    assert heading(await make(one, cache, clock).get_page("home")) == "one"
    assert heading(await make(two, cache, clock).get_page("home")) == "two"
    assert (await make(one, cache, clock).get_page("x")).page.slug == "x"
    assert (one.calls, two.calls) == (2, 1)


async def test_100_concurrent_misses_make_one_upstream_call(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    adapter.gate.clear()
    tasks = [asyncio.create_task(content.get_page("home")) for _ in range(100)]
    await upstream_entered(adapter)
    assert not any(task.done() for task in tasks)
    adapter.gate.set()
    pages = await asyncio.gather(*tasks)
    assert adapter.calls == 1
    assert content.upstream_calls == 1
    assert len({page.version for page in pages}) == 1


async def test_upstream_error_reaches_every_waiter_and_is_not_cached(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    adapter.gate.clear()
    adapter.error = CMSUnavailable("fake", "down")
    tasks = [asyncio.create_task(content.get_page("home")) for _ in range(20)]
    await upstream_entered(adapter)
    adapter.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert adapter.calls == 1
    assert all(isinstance(result, CMSUnavailable) for result in results)
    adapter.error = None
    assert (await content.get_page("home")).page == adapter.pages["home"].page
    assert adapter.calls == 2
    assert content.metrics.upstream_errors == 1


async def test_malformed_content_propagates_and_next_call_retries(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    adapter.error = MalformedContent("fake", "bad", entry="home", field="title")
    for attempt in (1, 2):
        with pytest.raises(MalformedContent):
            await content.get_page("home")
        assert adapter.calls == attempt


async def test_after_ttl_and_stale_window_the_page_is_fetched_again(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    await content.get_page("home")
    adapter.pages["home"] = parsed("home", "updated")
    clock.now += 59
    assert heading(await content.get_page("home")) == "Hello"
    clock.now += 60 + 30  # beyond ttl + stale-while-revalidate
    assert heading(await content.get_page("home")) == "updated"
    assert adapter.calls == 2


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    first = await content.get_page("home")
    adapter.pages["home"] = parsed("home", "updated")
    adapter.gate.clear()
    clock.now += 70  # stale, within the 30 s revalidation window
    stale = await asyncio.gather(*(content.get_page("home") for _ in range(20)))
    assert all(page.version == first.version for page in stale)  # answered without waiting
    assert content.metrics.stale_served == 20
    adapter.gate.set()
    await settle(content)
    assert adapter.calls == 2  # one background refresh for 20 stale reads
    fresh = await content.get_page("home")
    assert heading(fresh) == "updated"
    assert fresh.version != first.version


async def test_failed_background_refresh_keeps_the_stale_copy(
    adapter: CountingAdapter, cache: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    content = make(adapter, cache, clock)
    await content.get_page("home")
    adapter.error = CMSUnavailable(adapter.name, "HTTP 503")
    clock.now += 70
    caplog.set_level(logging.WARNING, logger="cms_adapters.content_cache")
    assert heading(await content.get_page("home")) == "Hello"
    await settle(content)
    assert content.metrics.refresh_errors == 1
    assert "stale copy kept" in caplog.text
    assert heading(await content.get_page("home")) == "Hello"


@pytest.mark.parametrize(
    "error",
    [
        CMSUnavailable("fake", "HTTP 503"),
        CMSRateLimited("fake", "HTTP 429", retry_after=30),
        MalformedContent("fake", "bad", entry="home", field="blocks[0]"),
    ],
    ids=["unavailable", "rate-limited", "malformed"],
)
async def test_stale_if_error_keeps_the_page_up_within_the_window(
    adapter: CountingAdapter, cache: Any, clock: FakeClock, error: Exception
) -> None:
    content = make(adapter, cache, clock)
    first = await content.get_page("home")
    adapter.error = error
    clock.now += 60 + 300  # past stale-while-revalidate, within stale-if-error (600)
    page = await content.get_page("home")
    assert page.version == first.version
    assert content.metrics.stale_if_error_served == 1
    clock.now += 400  # past ttl + stale-if-error
    with pytest.raises(type(error)):
        await content.get_page("home")


async def test_a_deleted_page_is_not_served_stale(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    await content.get_page("home")
    del adapter.pages["home"]
    clock.now += 200
    with pytest.raises(ContentNotFound):
        await content.get_page("home")


async def test_not_found_is_cached_briefly_then_expires(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock, not_found_ttl=5)
    for _ in range(3):
        with pytest.raises(ContentNotFound) as info:
            await content.get_page("new")
        assert info.value.entry == "new"
    assert adapter.calls == 1
    assert content.metrics.not_found_hits == 2
    adapter.pages["new"] = parsed("new")
    clock.now += 6
    assert (await content.get_page("new")).page.slug == "new"
    assert adapter.calls == 2


async def test_concurrent_not_found_share_one_call(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    adapter.gate.clear()
    tasks = [asyncio.create_task(content.get_page("missing")) for _ in range(10)]
    await upstream_entered(adapter)
    adapter.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, ContentNotFound) for result in results)
    assert adapter.calls == 1


async def test_invalidate_forces_a_refetch_and_clears_not_found(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock, not_found_ttl=60)
    await content.get_page("home")
    adapter.pages["home"] = parsed("home", "edited")
    assert heading(await content.get_page("home")) == "Hello"
    await content.invalidate("home")
    assert heading(await content.get_page("home")) == "edited"
    with pytest.raises(ContentNotFound):
        await content.get_page("new")
    adapter.pages["new"] = parsed("new")
    await content.invalidate("new")
    assert (await content.get_page("new")).page.slug == "new"
    await content.invalidate("never-cached")  # harmless


async def test_a_changed_block_invalidates_every_page_of_that_cms_only(
    adapter: CountingAdapter, cache: Any, clock: FakeClock, cms_name: str
) -> None:
    content = make(adapter, cache, clock)
    other = CountingAdapter({"home": parsed("home")}, name=f"{cms_name}other")
    other_content = make(other, cache, clock)
    await content.get_page("home")
    await content.get_page("about")
    await other_content.get_page("home")
    await content.apply(ChangedKeys(blocks=frozenset({"hero"})))
    await content.get_page("home")
    await content.get_page("about")
    await other_content.get_page("home")
    assert adapter.calls == 4
    assert other.calls == 1


async def test_apply_pages_invalidates_only_those_pages(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    await content.get_page("home")
    await content.get_page("about")
    await content.apply(ChangedKeys(pages=frozenset({"home"})))
    await content.get_page("home")
    await content.get_page("about")
    assert adapter.calls == 3


async def test_an_invalidation_keeps_an_in_flight_fetch_out_of_the_cache(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    adapter.gate.clear()
    before = asyncio.create_task(content.get_page("home"))  # fetch of the old content
    await upstream_entered(adapter)
    adapter.pages["home"] = parsed("home", "published")
    await content.invalidate("home")
    adapter.gate.set()
    await before
    assert heading(await content.get_page("home")) == "published"
    assert adapter.calls == 2


async def test_each_fetch_gets_a_new_version(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock, stale_while_revalidate=0)
    first = await content.get_page("home")
    assert first.version
    assert (await content.get_page("home")).version == first.version
    await content.invalidate("home")
    second = await content.get_page("home")
    clock.now += 61
    third = await content.get_page("home")
    assert adapter.calls == 3
    assert len({first.version, second.version, third.version}) == 3


async def test_previews_bypass_the_cache(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    await content.get_page("home", preview=True)
    await content.get_page("home", preview=True)
    await content.get_page("home")
    assert adapter.calls == 3


async def test_content_problems_are_logged_once_per_fetch(
    cache: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture, cms_name: str
) -> None:
    page = parsed("home", extra_variant={"id": "broken", "fields": {}})
    assert len(page.problems) == 1
    content = make(CountingAdapter({"home": page}, name=cms_name), cache, clock)
    caplog.set_level(logging.WARNING, logger="cms_adapters.content_cache")
    await content.get_page("home")
    await content.get_page("home")
    records = [r for r in caplog.records if r.name == "cms_adapters.content_cache"]
    assert len(records) == 1
    assert "blocks[0].variants[1].fields.heading" in records[0].getMessage()


class BrokenBackend:
    """A cache backend whose server is gone."""

    async def get(self, key: str, default: Any = None) -> Any:
        raise ConnectionError("cache down")

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        raise ConnectionError("cache down")


async def test_a_cache_outage_degrades_to_direct_fetches(
    adapter: CountingAdapter, clock: FakeClock
) -> None:
    content = make(adapter, BrokenBackend(), clock)
    assert (await content.get_page("home")).page.slug == "home"
    assert content.metrics.backend_errors == 2


async def test_metrics_snapshot_counts_upstream_latency(
    adapter: CountingAdapter, clock: FakeClock
) -> None:
    content = make(adapter, Cache(Cache.MEMORY), clock)
    await content.get_page("home")
    await content.get_page("home")
    snapshot = content.metrics.snapshot()
    assert snapshot["hits"] == 1
    assert snapshot["misses"] == 1
    assert snapshot["upstream_calls"] == 1
    assert snapshot["upstream_seconds_total"] >= 0
    assert "upstream_seconds" not in snapshot


async def test_metrics_render_as_prometheus_text(
    adapter: CountingAdapter, clock: FakeClock
) -> None:
    content = make(adapter, Cache(Cache.MEMORY), clock)
    await content.get_page("home")
    await content.get_page("home")
    clock.now += 70
    await content.get_page("home")
    await settle(content)
    text = content.metrics.prometheus("contentful")
    assert 'tessera_content_cache_hits_total{cms="contentful"} 1\n' in text
    assert 'tessera_content_cache_misses_total{cms="contentful"} 1\n' in text
    assert 'tessera_content_cache_stale_served_total{cms="contentful"} 1\n' in text
    assert 'tessera_content_upstream_seconds_count{cms="contentful"} 2\n' in text
    assert 'tessera_content_upstream_seconds{cms="contentful",quantile="0.99"}' in text


async def test_replicas_share_pages_and_each_others_invalidations(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    first, second = make(adapter, cache, clock), make(adapter, cache, clock)
    assert heading(await first.get_page("home")) == "Hello"
    assert heading(await second.get_page("home")) == "Hello"
    assert adapter.calls == 1
    adapter.pages["home"] = parsed("home", "edited")
    await second.invalidate("home")
    # What the invalidator's pub/sub message does on the other replica.
    await first.apply(ChangedKeys(pages=frozenset({"home"})), remote=True)
    assert heading(await first.get_page("home")) == "edited"
    assert heading(await second.get_page("home")) == "edited"
    assert adapter.calls == 2


def count_reads(backend: Any) -> list[int]:
    """Count the backend's `get` calls from now on (in the list's one item)."""
    reads = [0]
    real_get = backend.get

    async def counting_get(*args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return await real_get(*args, **kwargs)

    backend.get = counting_get
    return reads


async def test_over_redis_a_fresh_page_is_served_from_the_process(
    adapter: CountingAdapter, redis_url: str, clock: FakeClock
) -> None:
    backend = open_cache(redis_url)
    content = make(adapter, backend, clock)
    other = make(adapter, backend, clock)
    await other.get_page("home")  # stored in Redis by another replica
    first = await content.get_page("home")
    reads = count_reads(backend)
    # The same object: neither a Redis round trip nor another unpickled copy.
    assert await content.get_page("home") is first
    assert reads[0] == 0
    clock.now += 61  # no longer fresh: Redis is asked again (another replica may have refreshed)
    assert (await content.get_page("home")).version == first.version
    assert reads[0] == 1
    await settle(content)
    await close_cache(backend)


async def test_over_redis_an_invalidation_during_a_read_keeps_the_old_copy_out(
    adapter: CountingAdapter, redis_url: str, clock: FakeClock
) -> None:
    backend = open_cache(redis_url)
    writer, content = make(adapter, backend, clock), make(adapter, backend, clock)
    await writer.get_page("home")
    entered, release = asyncio.Event(), asyncio.Event()
    real_get = backend.get

    async def slow_get(*args: Any, **kwargs: Any) -> Any:
        value = await real_get(*args, **kwargs)
        entered.set()
        await release.wait()
        return value

    backend.get = slow_get
    reading = asyncio.create_task(content.get_page("home"))
    await asyncio.wait_for(entered.wait(), 2)
    adapter.pages["home"] = parsed("home", "published")
    await content.apply(ChangedKeys(pages=frozenset({"home"})), remote=True)
    release.set()
    assert heading(await reading) == "Hello"  # the read that began before it
    backend.get = real_get
    await writer.invalidate("home")
    assert heading(await content.get_page("home")) == "published"
    await close_cache(backend)


async def test_a_scan_takes_a_cached_page_at_any_age_and_fetches_only_uncached_ones(
    adapter: CountingAdapter, cache: Any, clock: FakeClock
) -> None:
    content = make(adapter, cache, clock)
    first = await content.get_page("home")
    clock.now += 200  # past the TTL and the stale-while-revalidate window
    assert (await content.scan_page("home")).version == first.version
    await settle(content)
    assert adapter.calls == 1  # no refresh started
    assert (await content.scan_page("about")).page.slug == "about"
    assert adapter.calls == 2
    with pytest.raises(ContentNotFound):
        await content.scan_page("missing")


@pytest.mark.parametrize("everything", [False, True])
async def test_over_redis_a_read_racing_the_delete_of_an_invalidation_is_not_kept(
    adapter: CountingAdapter, redis_url: str, clock: FakeClock, everything: bool
) -> None:
    backend = open_cache(redis_url)
    content = make(adapter, backend, clock)
    await content.get_page("home")
    await content.invalidate("home")  # nothing kept in process yet: the next read keeps it
    await content.get_page("home")
    held, release = asyncio.Event(), asyncio.Event()
    real_delete, real_clear = backend.delete, backend.clear

    async def slow(real: Any, *args: Any, **kwargs: Any) -> Any:
        held.set()
        await release.wait()  # the old entry is still in Redis meanwhile
        return await real(*args, **kwargs)

    backend.delete = lambda *a, **k: slow(real_delete, *a, **k)
    backend.clear = lambda *a, **k: slow(real_clear, *a, **k)
    adapter.pages["home"] = parsed("home", "published")
    invalidation = asyncio.create_task(
        content.invalidate_all() if everything else content.invalidate("home")
    )
    await asyncio.wait_for(held.wait(), 2)
    assert heading(await content.get_page("home")) == "Hello"  # read from Redis, before it
    release.set()
    await invalidation
    assert heading(await content.get_page("home")) == "published"
    await close_cache(backend)


async def test_over_redis_the_process_keeps_the_pages_read_most_recently(
    redis_url: str, clock: FakeClock, cms_name: str
) -> None:
    adapter = CountingAdapter({slug: parsed(slug) for slug in "abcd"}, name=cms_name)
    backend = open_cache(redis_url)
    content = make(adapter, backend, clock, local_entries=2)
    reads = count_reads(backend)
    for slug in "abc":
        await content.get_page(slug)  # a miss each: fetched, written to Redis
    for slug in "ab":
        await content.get_page(slug)  # from Redis, now kept in process
    reads[0] = 0
    await content.get_page("a")  # a hit in process: the most recently used again
    await content.get_page("c")  # from Redis: evicts b, the least recently used
    await content.get_page("a")
    assert reads[0] == 1
    await content.get_page("b")
    assert reads[0] == 2
    # A scan reads any page without keeping it: the pages visitors read stay.
    await content.scan_page("d")
    await content.get_page("b")
    await content.get_page("c")
    assert reads[0] == 4  # b is kept (read last), c was evicted by b, not by the scan
    await close_cache(backend)
