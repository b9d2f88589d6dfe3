"""Invalidation fan-out over a real Redis, surrogate keys, webhook signature details, settings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.cache_backend import close_cache, open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.errors import WebhookRejected
from cms_adapters.invalidation import Invalidator, decode, encode, surrogate_keys
from cms_adapters.webhooks import contentful_signature, verify_contentful, verify_sanity
from common.collections import INVALIDATIONS
from gateway.app import build_adapter
from gateway.settings import Settings
from tests.cms.test_content_cache import CountingAdapter, heading, parsed
from tests.cms.vendors import SECRET, FakeContentful, FakeSanity


@asynccontextmanager
async def running(invalidators: list[Invalidator]) -> AsyncIterator[None]:
    """Start the invalidators; then stop them, their content caches and cache backends."""
    for invalidator in invalidators:
        await invalidator.start()
    try:
        yield
    finally:
        for invalidator in invalidators:
            await invalidator.aclose()
            await invalidator.content.aclose()
            await close_cache(invalidator.content.cache)


@pytest.fixture
async def replicas(
    redis_url: str, cms_name: str
) -> AsyncIterator[tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter]]:
    """Two replicas sharing one Redis for the cache and for pub/sub."""
    caches = [open_cache(redis_url), open_cache(redis_url)]
    adapters = [CountingAdapter({"home": parsed("home")}, name=cms_name) for _ in caches]
    invalidators = [
        Invalidator(ContentCache(adapter, cache), redis_url=redis_url)
        for adapter, cache in zip(adapters, caches, strict=True)
    ]
    async with running(invalidators):
        yield invalidators[0], invalidators[1], adapters[0], adapters[1]


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(3):
        while not condition():  # noqa: ASYNC110 - polling a counter in a test
            await asyncio.sleep(0.01)


async def test_a_publish_reaches_the_other_replica_and_voids_its_in_flight_fetch(
    replicas: tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter],
) -> None:
    one, two, adapter_one, adapter_two = replicas
    # Replica two starts fetching the old content just before the publish...
    adapter_two.gate.clear()
    adapter_two.pages["home"] = parsed("home", "old")
    in_flight = asyncio.create_task(two.content.get_page("home"))
    async with asyncio.timeout(2):
        await adapter_two.entered.wait()
    # ...the CMS publishes, replica one receives the webhook.
    adapter_one.pages["home"] = parsed("home", "new")
    keys = await one.publish(ChangedKeys(pages=frozenset({"home"})))
    assert keys == ["page:home"]
    await wait_for(lambda: two.received == 1)
    adapter_two.gate.set()
    assert heading(await in_flight) == "old"  # that caller asked before the publish
    # The old result was not written to the shared cache: replica one fetches the new one.
    assert heading(await one.content.get_page("home")) == "new"
    assert adapter_one.calls == 1
    assert one.received == 0  # its own message is ignored


async def test_messages_for_another_cms_or_garbage_are_ignored(
    replicas: tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter],
) -> None:
    one, two, _, _ = replicas
    await one._redis.publish(
        one.channel, encode("someone", "other-cms", ChangedKeys(everything=True))
    )
    await one._redis.publish(one.channel, b"not json")
    await one.publish(ChangedKeys(everything=True))
    await wait_for(lambda: two.received == 1)


def test_messages_round_trip() -> None:
    changed = ChangedKeys(pages=frozenset({"a", "b"}), blocks=frozenset({"hero"}))
    assert decode(encode("o", "cms", changed)) == ("o", "cms", changed)
    assert decode("{}") is None
    assert decode("[" * 100_000 + "]" * 100_000) is None  # not ours, and no crash


def test_surrogate_keys() -> None:
    assert surrogate_keys("sanity", ChangedKeys(everything=True)) == ["cms:sanity"]
    changed = ChangedKeys(pages=frozenset({"b", "a"}), blocks=frozenset({"hero"}))
    assert surrogate_keys("sanity", changed) == ["page:a", "page:b", "block:hero"]


def signed_contentful(**overrides: Any) -> WebhookRequest:
    request = FakeContentful().webhook("home")
    headers = {**request.headers, **overrides}
    return WebhookRequest(request.method, request.path, headers, request.body)


def test_contentful_rejects_old_timestamps_and_unsigned_timestamps() -> None:
    request = FakeContentful().webhook("home")
    verify_contentful(request, SECRET, now=time.time())
    with pytest.raises(WebhookRejected, match="window"):
        verify_contentful(request, SECRET, now=time.time() + 3600)
    with pytest.raises(WebhookRejected, match="not signed"):
        verify_contentful(
            signed_contentful(**{"x-contentful-signed-headers": "x-contentful-topic"}),
            SECRET,
            now=time.time(),
        )
    with pytest.raises(WebhookRejected, match="configured"):
        verify_contentful(request, "", now=time.time())


def test_contentful_signature_covers_the_path_and_query() -> None:
    body = b"{}"
    headers = [("x-contentful-timestamp", "1")]
    plain = contentful_signature(SECRET, "POST", "/webhooks/contentful", headers, body)
    query = contentful_signature(SECRET, "POST", "/webhooks/contentful?x=1", headers, body)
    assert plain != query
    assert len(plain) == 64


def test_sanity_rejects_malformed_and_old_signatures() -> None:
    request = FakeSanity().webhook("home")
    verify_sanity(request, SECRET, now=time.time())
    with pytest.raises(WebhookRejected, match="window"):
        verify_sanity(request, SECRET, now=time.time() - 3600)
    bad = WebhookRequest("POST", "/", {"sanity-webhook-signature": "v1=abc"}, request.body)
    with pytest.raises(WebhookRejected, match="is not"):
        verify_sanity(bad, SECRET, now=time.time())


def test_unknown_webhook_content_means_everything() -> None:
    adapter = FakeSanity().adapter()
    body = json.dumps({"_id": "x", "_type": "siteSettings"}).encode()
    from cms_adapters.webhooks import sanity_signature

    header = sanity_signature(SECRET, int(time.time() * 1000), body)
    request = WebhookRequest("POST", "/", {"sanity-webhook-signature": header}, body)
    assert adapter.parse_webhook(request) == ChangedKeys(everything=True)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"cms": "contentful"}, "CONTENTFUL_SPACE_ID"),
        ({"cms": "contentful", "contentful_space_id": "s"}, "CONTENTFUL_ACCESS_TOKEN"),
        ({"cms": "strapi", "strapi_token": "t"}, "STRAPI_URL"),
        ({"cms": "sanity"}, "SANITY_PROJECT_ID"),
        ({"cms": "directus", "directus_url": "http://d"}, "DIRECTUS_TOKEN"),
    ],
)
def test_missing_credentials_name_the_variable(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        build_adapter(Settings(**env))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "cls"),
    [
        (
            {"cms": "contentful", "contentful_space_id": "s", "contentful_access_token": "t"},
            "ContentfulAdapter",
        ),
        ({"cms": "strapi", "strapi_url": "http://s", "strapi_token": "t"}, "StrapiAdapter"),
        ({"cms": "sanity", "sanity_project_id": "p"}, "SanityAdapter"),
        ({"cms": "directus", "directus_url": "http://d", "directus_token": "t"}, "DirectusAdapter"),
    ],
)
async def test_setting_cms_and_credentials_is_all_it_takes(env: dict[str, str], cls: str) -> None:
    async with build_adapter(Settings(**env)) as adapter:  # type: ignore[arg-type]
        assert type(adapter).__name__ == cls
        assert adapter.name == env["cms"]


def test_unknown_cache_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CACHE_URL"):
        open_cache("memcached://x")


async def test_a_replica_that_lost_the_channel_forgets_the_pages_it_kept(
    replicas: tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter],
) -> None:
    one, two, adapter_one, adapter_two = replicas
    await two.content.get_page("home")  # fetched and written to Redis
    assert heading(await two.content.get_page("home")) == "Hello"  # read, kept in process
    # A publish whose message replica two never gets (its channel is down).
    subscribed = two._subscribed
    for adapter in (adapter_one, adapter_two):
        adapter.pages["home"] = parsed("home", "published")
    await one.content.invalidate("home")
    assert heading(await two.content.get_page("home")) == "Hello"  # its own copy
    await one._redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await wait_for(lambda: not subscribed.is_set())
    await wait_for(subscribed.is_set)
    assert heading(await two.content.get_page("home")) == "published"


@pytest.fixture
async def workers(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str, cms_name: str
) -> AsyncIterator[tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter]]:
    """Two processes without Redis: a memory cache each, one MongoDB collection between."""
    collection = mongo[database_name][INVALIDATIONS]
    adapters = [CountingAdapter({"home": parsed("home")}, name=cms_name) for _ in range(2)]
    invalidators = [
        Invalidator(ContentCache(adapter, open_cache("memory://")), collection=collection)
        for adapter in adapters
    ]
    async with running(invalidators):
        yield invalidators[0], invalidators[1], adapters[0], adapters[1]


async def test_without_redis_a_publish_reaches_the_other_process_through_mongodb(
    workers: tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter],
) -> None:
    one, two, adapter_one, adapter_two = workers
    assert heading(await two.content.get_page("home")) == "Hello"  # in two's own cache
    for adapter in (adapter_one, adapter_two):
        adapter.pages["home"] = parsed("home", "published")
    await one.publish(ChangedKeys(pages=frozenset({"home"})))
    await wait_for(lambda: two.received == 1)
    assert heading(await two.content.get_page("home")) == "published"
    assert adapter_two.calls == 2
    assert one.received == 0  # its own message is ignored


async def test_a_stream_closed_under_the_invalidator_is_reopened_not_polled(
    workers: tuple[Invalidator, Invalidator, CountingAdapter, CountingAdapter],
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    one, two, _, adapter_two = workers
    await mongo.drop_database(database_name)  # closes every change stream on it
    started = time.monotonic()
    await asyncio.sleep(0.2)  # a closed stream polled in a loop never lets this return
    assert time.monotonic() - started < 2.0
    await two.content.get_page("home")
    adapter_two.pages["home"] = parsed("home", "after the drop")

    async def published() -> bool:
        await one.publish(ChangedKeys(pages=frozenset({"home"})))
        return heading(await two.content.get_page("home")) == "after the drop"

    async with asyncio.timeout(10):
        while not await published():  # noqa: ASYNC110 - polling what a retry shows
            await asyncio.sleep(0.2)  # until the reopened stream carries it
