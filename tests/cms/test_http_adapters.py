"""HTTP behaviour of the four vendor adapters: links, retries, errors, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cms_adapters.base import CMSAdapter
from cms_adapters.contentful import ContentfulAdapter
from cms_adapters.errors import (
    CMSRateLimited,
    CMSUnauthorized,
    CMSUnavailable,
    ContentNotFound,
    MalformedContent,
)
from cms_adapters.http import retry_after
from cms_adapters.strapi import StrapiAdapter
from tests.cms.vendors import HTTP_VENDORS, Failure, FakeContentful, FakeStrapi, FakeVendor

IMAGES = {
    "contentful": "https://images.ctfassets.net/sp1/asset-hero/abc/hero.jpg",
    "strapi": "http://strapi.test/uploads/hero_abc.jpg",
    "sanity": "https://cdn.sanity.io/images/proj1/production/abc-1600x900.jpg",
    "directus": "http://directus.test/assets/4b9f1c2e-0000-4000-8000-000000000001",
}


@pytest.fixture(params=list(HTTP_VENDORS))
def vendor(request: pytest.FixtureRequest) -> FakeVendor:
    return HTTP_VENDORS[request.param]()


@pytest.fixture
async def adapter(vendor: FakeVendor) -> AsyncIterator[CMSAdapter]:
    async with vendor.adapter() as adapter:
        if isinstance(adapter, ContentfulAdapter):
            await adapter.default_locale()  # asked once per adapter, before any page
            vendor.requests.clear()
        yield adapter


async def test_linked_assets_become_images(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    hero = (await adapter.fetch_page("home")).page.blocks[0]
    image = hero.variants[1].fields["image"]
    assert image["url"] == IMAGES[vendor.name]
    assert image["alt"] == "Trail at dawn"
    assert (image["width"], image["height"]) == (1600, 900)


async def test_links_to_missing_blocks_are_skipped(adapter: CMSAdapter) -> None:
    # Contentful and Sanity answer with a dangling reference; the page still renders.
    assert [b.id for b in (await adapter.fetch_page("home")).page.blocks] == ["hero", "banner"]


async def test_one_request_per_page(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    await adapter.fetch_page("home")
    await adapter.fetch_page("about")
    # Strapi 5 answers one locale per request: home's de-DE costs one more.
    assert len(vendor.requests) == (3 if vendor.name == "strapi" else 2)


async def test_strapi_fetches_each_other_locale_and_merges_it() -> None:
    vendor = FakeStrapi()
    vendor.site["home"]["titles"] = {"de-DE": "Startseite"}
    async with vendor.adapter() as adapter:
        page = (await adapter.fetch_page("home")).page
    assert [request.url.params.get("locale") for request in vendor.requests] == [None, "de-DE"]
    assert page.titles == {"de-DE": "Startseite"}
    assert page.blocks[0].variants[1].localized == {"de-DE": {"heading": "Willkommen"}}


async def test_strapi_skips_a_locale_that_is_not_translated() -> None:
    vendor = FakeStrapi()
    vendor.site["home"]["blocks"][0]["variants"][1].pop("localized")
    vendor.site["home"].pop("titles")
    async with vendor.adapter() as adapter:
        page = (await adapter.fetch_page("home")).page
    assert len(vendor.requests) == 2  # asked, answered with no document
    assert page.title == "Home"
    assert page.blocks[0].variants[1].localized == {}


async def test_localized_titles_reach_the_page(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    vendor.site["home"]["titles"] = {"de-DE": "Startseite"}
    page = (await adapter.fetch_page("home")).page
    assert page.titles == {"de-DE": "Startseite"}
    assert page.title == "Home"


async def test_401_is_unauthorized_with_the_vendor_message(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures.append(vendor.unauthorized())
    with pytest.raises(CMSUnauthorized) as info:
        await adapter.fetch_page("home")
    assert info.value.cms == vendor.name
    assert info.value.entry == "page home"
    assert "HTTP 401" in str(info.value)
    assert len(vendor.requests) == 1  # never retried


async def test_404_from_the_api_is_content_not_found(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures.append(Failure(404, {"message": "The resource could not be found."}))
    with pytest.raises(ContentNotFound):
        await adapter.fetch_page("home")


async def test_429_is_retried_after_the_time_the_vendor_asks(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures.append(vendor.rate_limited(2))
    assert (await adapter.fetch_page("about")).page.slug == "about"
    assert vendor.sleeps == [2.0]
    assert len(vendor.requests) == 2


async def test_persistent_429_is_rate_limited_with_retry_after(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures += [vendor.rate_limited(1)] * 3
    with pytest.raises(CMSRateLimited) as info:
        await adapter.fetch_page("home")
    assert info.value.retry_after == 1.0
    assert len(vendor.requests) == 3  # first try + 2 retries


async def test_a_wait_longer_than_allowed_gives_up_at_once(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures.append(vendor.rate_limited(60))
    with pytest.raises(CMSRateLimited):
        await adapter.fetch_page("home")
    assert vendor.sleeps == []


async def test_5xx_is_retried_with_backoff_then_unavailable(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures += [vendor.server_error()] * 3
    with pytest.raises(CMSUnavailable) as info:
        await adapter.fetch_page("home")
    assert "HTTP 500" in str(info.value)
    assert vendor.sleeps == [0.2, 0.4]


async def test_a_transient_5xx_recovers(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    vendor.failures.append(Failure(503, raw=b"<html>Service Unavailable</html>"))
    assert (await adapter.fetch_page("home")).page.slug == "home"


async def test_timeouts_are_retried_then_unavailable(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures += [Failure(0)] * 3
    with pytest.raises(CMSUnavailable, match="timed out"):
        await adapter.fetch_page("home")
    assert len(vendor.requests) == 3


async def test_a_body_that_is_not_json_is_malformed(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.failures.append(Failure(200, raw=b"<html>captive portal</html>"))
    with pytest.raises(MalformedContent, match="not JSON"):
        await adapter.fetch_page("home")


@pytest.mark.parametrize("body", [[], {"unexpected": True}, {"data": "x", "items": 3}])
async def test_a_body_of_the_wrong_shape_is_malformed(
    vendor: FakeVendor, adapter: CMSAdapter, body: Any
) -> None:
    vendor.failures.append(Failure(200, body))
    with pytest.raises(MalformedContent) as info:
        await adapter.fetch_page("home")
    assert info.value.cms == vendor.name


async def test_invalid_json_text_drops_only_that_variant(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.site["home"]["blocks"][0]["variants"][0]["condition"] = "{not json"
    parsed = await adapter.fetch_page("home")
    assert [v.id for v in parsed.page.blocks[0].variants] == ["default"]
    assert parsed.problems[0].path == "blocks[0].variants[0].condition"


async def test_invalid_json_in_page_titles_names_the_field(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.site["home"]["titles"] = "{not json"
    with pytest.raises(MalformedContent) as info:
        await adapter.fetch_page("home")
    assert (info.value.cms, info.value.field) == (vendor.name, "titles")
    assert "not valid JSON" in str(info.value)


async def test_json_text_nested_too_deeply_is_malformed_not_a_crash(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.site["home"]["titles"] = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedContent) as info:
        await adapter.fetch_page("home")
    assert info.value.field == "titles"
    assert "nested too deeply" in str(info.value)


async def test_a_bad_variant_is_left_out_and_reported(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.site["home"]["blocks"][0]["variants"][0]["fields"] = {}
    parsed = await adapter.fetch_page("home")
    assert [v.id for v in parsed.page.blocks[0].variants] == ["default"]
    assert str(parsed.problems[0]).startswith("blocks[0].variants[0].fields.heading")


def test_retry_after_reads_seconds_dates_and_contentful_reset() -> None:
    def response(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers=headers)

    assert retry_after(response(**{"Retry-After": "3"})) == 3.0
    assert retry_after(response(**{"X-Contentful-RateLimit-Reset": "7"})) == 7.0
    date = "Sun, 22 Nov 2026 12:00:10 GMT"
    now = 1795348800.0  # 2026-11-22 12:00:00 UTC
    assert retry_after(response(**{"Retry-After": date}), now=now) == 10.0
    assert retry_after(response(**{"Retry-After": "soon"})) is None
    assert retry_after(response()) is None


async def test_contentful_asks_for_the_default_locale_once() -> None:
    vendor = FakeContentful()
    async with vendor.adapter() as adapter:
        await adapter.fetch_page("home")
        await adapter.fetch_page("about")
    paths = [request.url.path.rsplit("/", 1)[-1] for request in vendor.requests]
    assert paths == ["locales", "entries", "entries"]


async def test_contentful_without_a_default_locale_is_malformed() -> None:
    vendor = FakeContentful()
    vendor.failures.append(Failure(200, {"sys": {"type": "Array"}, "items": []}))
    async with vendor.adapter() as adapter:
        with pytest.raises(MalformedContent, match="default locale"):
            await adapter.fetch_page("home")


async def test_real_socket_timeouts_and_refused_connections_are_unavailable() -> None:
    release = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)  # type: ignore[arg-type]
        await reader.read(65536)  # read the request, never answer
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    try:
        async with StrapiAdapter(
            f"http://127.0.0.1:{port}", "t", timeout=0.2, retries=1, sleep=no_sleep
        ) as adapter:
            started = time.monotonic()
            with pytest.raises(CMSUnavailable, match="timed out"):
                await adapter.fetch_page("home")
            assert time.monotonic() - started < 2
            assert sleeps == [0.2]
    finally:
        release.set()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()
        await server.wait_closed()
    async with StrapiAdapter(f"http://127.0.0.1:{port}", "t", retries=0) as adapter:
        with pytest.raises(CMSUnavailable, match="cannot connect"):
            await adapter.fetch_page("home")
