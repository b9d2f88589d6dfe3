"""The content cache: single flight, error propagation, TTLs, not-found caching, invalidation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiocache import Cache

from blocks.parse import ParsedPage, parse_page
from cms_adapters.base import CMSAdapter
from cms_adapters.content_cache import ContentCache
from cms_adapters.errors import CMSUnavailable, ContentNotFound, MalformedContent


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


@pytest.fixture
def adapter() -> CountingAdapter:
    return CountingAdapter({"home": parsed("home"), "about": parsed("about")})


@pytest.fixture
def cache() -> Any:
    return Cache(Cache.MEMORY)


async def upstream_entered(adapter: CountingAdapter) -> None:
    async with asyncio.timeout(2):
        await adapter.entered.wait()
    await asyncio.sleep(0.02)  # let every other task reach the held upstream call


async def test_miss_then_hit(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache)
    first = await content.get_page("home")
    second = await content.get_page("home")
    assert first.page is adapter.pages["home"].page
    assert second is first
    assert adapter.calls == 1
    assert content.upstream_calls == 1
    assert await cache.get("page:fake:home") is first


async def test_distinct_slugs_are_distinct_entries(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache)
    assert (await content.get_page("home")).page.slug == "home"
    assert (await content.get_page("about")).page.slug == "about"
    assert adapter.calls == 2


async def test_keys_are_namespaced_by_cms(cache: Any) -> None:
    one = CountingAdapter({"home": parsed("home", "from one")}, name="one")
    two = CountingAdapter({"home": parsed("home", "from two")}, name="two")
    assert (await ContentCache(one, cache).get_page("home")).page.blocks[0].variants[0].fields[
        "heading"
    ] == "from one"
    assert (await ContentCache(two, cache).get_page("home")).page.blocks[0].variants[0].fields[
        "heading"
    ] == "from two"
    assert (one.calls, two.calls) == (1, 1)


async def test_concurrent_misses_share_one_upstream_call(
    adapter: CountingAdapter, cache: Any
) -> None:
    content = ContentCache(adapter, cache)
    adapter.gate.clear()
    tasks = [asyncio.create_task(content.get_page("home")) for _ in range(100)]
    await upstream_entered(adapter)
    assert not any(task.done() for task in tasks)
    adapter.gate.set()
    pages = await asyncio.gather(*tasks)
    assert adapter.calls == 1
    assert content.upstream_calls == 1
    assert pages[0].page is adapter.pages["home"].page
    assert all(page is pages[0] for page in pages)


async def test_upstream_error_reaches_every_waiter_and_is_not_cached(
    adapter: CountingAdapter, cache: Any
) -> None:
    content = ContentCache(adapter, cache)
    adapter.gate.clear()
    adapter.error = CMSUnavailable("fake", "down")
    tasks = [asyncio.create_task(content.get_page("home")) for _ in range(20)]
    await upstream_entered(adapter)
    adapter.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert adapter.calls == 1
    assert all(isinstance(result, CMSUnavailable) for result in results)

    adapter.error = None
    page = await content.get_page("home")
    assert page.page is adapter.pages["home"].page
    assert adapter.calls == 2


async def test_single_caller_error_propagates_and_next_call_retries(
    adapter: CountingAdapter, cache: Any
) -> None:
    content = ContentCache(adapter, cache)
    adapter.error = MalformedContent("fake", "bad", entry="home", field="title")
    for attempt in (1, 2):
        with pytest.raises(MalformedContent):
            await content.get_page("home")
        assert adapter.calls == attempt
    adapter.error = None
    assert (await content.get_page("home")).page is adapter.pages["home"].page
    assert adapter.calls == 3


async def test_ttl_expiry_refetches(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache, ttl=0.05)
    await content.get_page("home")
    await content.get_page("home")
    assert adapter.calls == 1
    adapter.pages["home"] = parsed("home", "updated")
    await asyncio.sleep(0.15)
    page = await content.get_page("home")
    assert adapter.calls == 2
    assert page.page.blocks[0].variants[0].fields["heading"] == "updated"


async def test_not_found_is_cached_briefly(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache, not_found_ttl=60)
    for _ in range(3):
        with pytest.raises(ContentNotFound) as info:
            await content.get_page("missing")
        assert info.value.entry == "missing"
    assert adapter.calls == 1


async def test_not_found_expires_and_a_new_page_is_served(
    adapter: CountingAdapter, cache: Any
) -> None:
    content = ContentCache(adapter, cache, not_found_ttl=0.05)
    with pytest.raises(ContentNotFound):
        await content.get_page("new")
    adapter.pages["new"] = parsed("new")
    with pytest.raises(ContentNotFound):  # still cached as missing
        await content.get_page("new")
    assert adapter.calls == 1
    await asyncio.sleep(0.15)
    assert (await content.get_page("new")).page.slug == "new"
    assert adapter.calls == 2


async def test_concurrent_not_found_share_one_call(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache)
    adapter.gate.clear()
    tasks = [asyncio.create_task(content.get_page("missing")) for _ in range(10)]
    await upstream_entered(adapter)
    adapter.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, ContentNotFound) for result in results)
    assert adapter.calls == 1


async def test_invalidate_forces_a_refetch(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache)
    await content.get_page("home")
    adapter.pages["home"] = parsed("home", "edited")
    assert (await content.get_page("home")).page.blocks[0].variants[0].fields["heading"] == "Hello"
    await content.invalidate("home")
    page = await content.get_page("home")
    assert page.page.blocks[0].variants[0].fields["heading"] == "edited"
    assert adapter.calls == 2
    await content.invalidate("never-cached")  # harmless


async def test_invalidate_clears_a_cached_not_found(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache, not_found_ttl=60)
    with pytest.raises(ContentNotFound):
        await content.get_page("new")
    adapter.pages["new"] = parsed("new")
    await content.invalidate("new")
    assert (await content.get_page("new")).page.slug == "new"


async def test_content_problems_are_logged_once_per_fetch(
    cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    page = parsed("home", extra_variant={"id": "broken", "fields": {}})
    assert len(page.problems) == 1
    content = ContentCache(CountingAdapter({"home": page}), cache)
    caplog.set_level(logging.WARNING, logger="cms_adapters.content_cache")
    await content.get_page("home")
    await content.get_page("home")
    records = [r for r in caplog.records if r.name == "cms_adapters.content_cache"]
    assert len(records) == 1
    assert "blocks[0].variants[1].fields.heading" in records[0].getMessage()


async def test_each_fetch_gets_a_new_version(adapter: CountingAdapter, cache: Any) -> None:
    content = ContentCache(adapter, cache, ttl=0.05)
    first = await content.get_page("home")
    assert first.version
    assert (await content.get_page("home")).version == first.version  # a hit
    await content.invalidate("home")
    second = await content.get_page("home")
    await asyncio.sleep(0.15)
    third = await content.get_page("home")
    assert adapter.calls == 3
    assert len({first.version, second.version, third.version}) == 3
