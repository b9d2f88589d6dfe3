"""One behaviour suite for every purge sink: Varnish (a real varnishd), Fastly, Cloudflare, fan-out.

Like aiocache's acceptance tests, each test runs against every sink; what
differs per edge (how to see what it purged, how it says no) lives in `Edge`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client import REGISTRY

from cms_adapters.base import ChangedKeys
from cms_adapters.cache_backend import close_cache, open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.invalidation import Invalidator
from cms_adapters.purge import (
    CloudflarePurgeSink,
    FanOutPurgeSink,
    FastlyPurgeSink,
    HttpPurgeSink,
    PurgeRateLimited,
    PurgeRejected,
    PurgeSink,
    PurgeUnavailable,
    VarnishPurgeSink,
)
from tests.cms.test_content_cache import CountingAdapter, parsed
from tests.edge.conftest import OriginProcess, page_url, unique
from tests.edge.purge_vendors import (
    CLOUDFLARE_TOKEN,
    CLOUDFLARE_ZONE,
    FASTLY_SERVICE,
    FASTLY_TOKEN,
    Canned,
    FakeCloudflare,
    FakeFastly,
    InjectingTransport,
    varnish_failure,
)
from tests.edge.varnish import Varnish, free_port

RETRIES = 2


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Edge:
    """A sink under test, its edges' transports, and how to look at what they purged."""

    sink: PurgeSink
    labels: list[str]
    transports: list[InjectingTransport]
    failures: list[Callable[[str, float], Canned]]
    purged: Callable[[list[str]], Awaitable[set[str]]]
    prime: Callable[[list[str]], Awaitable[None]]
    sleeps: list[float] = field(default_factory=list)

    def fail(self, kind: str, times: int = 1, retry_after: float = 1.0) -> None:
        """Queue `times` failures of `kind` in front of every edge, in its own error shape."""
        for transport, failure in zip(self.transports, self.failures, strict=True):
            transport.failures += [failure(kind, retry_after)] * times

    def requests(self) -> list[int]:
        """Requests each edge received so far."""
        return [len(transport.requests) for transport in self.transports]

    def metric(self, name: str, **labels: str) -> float:
        return sum(metric(name, sink=label, **labels) for label in self.labels)


class Parts:
    """Builders of one sink each, sharing a recording sleep."""

    def __init__(self, sleeps: list[float]) -> None:
        self.sleeps = sleeps

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def fastly(self) -> tuple[HttpPurgeSink, InjectingTransport, FakeFastly]:
        fake = FakeFastly()
        transport = InjectingTransport(httpx.MockTransport(fake.handle))
        sink = FastlyPurgeSink(
            FASTLY_SERVICE, FASTLY_TOKEN, transport=transport, retries=RETRIES, sleep=self.sleep
        )
        return sink, transport, fake

    def cloudflare(self) -> tuple[HttpPurgeSink, InjectingTransport, FakeCloudflare]:
        fake = FakeCloudflare()
        transport = InjectingTransport(httpx.MockTransport(fake.handle))
        sink = CloudflarePurgeSink(
            CLOUDFLARE_ZONE,
            CLOUDFLARE_TOKEN,
            transport=transport,
            retries=RETRIES,
            sleep=self.sleep,
        )
        return sink, transport, fake

    def varnish(self, varnish: Varnish) -> tuple[HttpPurgeSink, InjectingTransport]:
        transport = InjectingTransport(httpx.AsyncHTTPTransport())
        sink = VarnishPurgeSink(
            [varnish.url], transport=transport, retries=RETRIES, sleep=self.sleep
        )
        return sink, transport


def slug_of(key: str) -> str:
    return key.partition(":")[2]


def varnish_checks(
    varnish: Varnish,
) -> tuple[Callable[[list[str]], Awaitable[None]], Callable[[list[str]], Awaitable[set[str]]]]:
    """Prime varnishd with one contract page per `page:<slug>` key; see which are gone."""

    async def prime(keys: list[str]) -> None:
        async with httpx.AsyncClient(base_url=varnish.url) as client:
            for key in keys:
                await client.get(page_url(slug_of(key)))
                response = await client.get(page_url(slug_of(key)))
                assert response.headers["x-cache"] == "HIT"

    async def purged(keys: list[str]) -> set[str]:
        gone = set()
        async with httpx.AsyncClient(base_url=varnish.url) as client:
            for key in keys:
                response = await client.get(page_url(slug_of(key)))
                if response.headers["x-cache"] == "MISS":
                    gone.add(key)
        return gone

    return prime, purged


async def nothing(keys: list[str]) -> None:
    return None


def recorded(*fakes: FakeFastly | FakeCloudflare) -> Callable[[list[str]], Awaitable[set[str]]]:
    async def purged(keys: list[str]) -> set[str]:
        return set.intersection(*(set(fake.purged) for fake in fakes)) & set(keys)

    return purged


@pytest.fixture(
    params=[
        pytest.param("varnish", marks=pytest.mark.slow),
        "fastly",
        "cloudflare",
        pytest.param("fan-out", marks=pytest.mark.slow),
    ]
)
async def edge(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    sleeps: list[float] = []
    parts = Parts(sleeps)
    built: Edge
    if request.param == "fastly":
        sink, transport, fake = parts.fastly()
        built = Edge(sink, ["fastly"], [transport], [fake.failure], recorded(fake), nothing)
    elif request.param == "cloudflare":
        sink, transport, fake_cf = parts.cloudflare()
        built = Edge(
            sink, ["cloudflare"], [transport], [fake_cf.failure], recorded(fake_cf), nothing
        )
    else:
        varnish: Varnish = request.getfixturevalue("varnish")
        prime, gone = varnish_checks(varnish)
        varnish_sink, varnish_transport = parts.varnish(varnish)
        if request.param == "varnish":
            built = Edge(
                varnish_sink, ["varnish"], [varnish_transport], [varnish_failure], gone, prime
            )
        else:
            fastly, fastly_transport, fake = parts.fastly()
            cloudflare, cloudflare_transport, fake_cf = parts.cloudflare()
            from_fakes = recorded(fake, fake_cf)

            async def everywhere(keys: list[str]) -> set[str]:
                return await gone(keys) & await from_fakes(keys)

            built = Edge(
                FanOutPurgeSink([varnish_sink, fastly, cloudflare]),
                ["varnish", "fastly", "cloudflare"],
                [varnish_transport, fastly_transport, cloudflare_transport],
                [varnish_failure, fake.failure, fake_cf.failure],
                everywhere,
                prime,
            )
    built.sleeps = sleeps
    async with built.sink as sink:
        assert sink is built.sink
        yield built


def page_keys(count: int) -> list[str]:
    return [f"page:{unique('sink')}" for _ in range(count)]


async def test_purged_keys_are_gone_from_the_edge(edge: Edge) -> None:
    keys = page_keys(3)
    await edge.prime(keys)
    before = edge.metric("tessera_purge_keys_total")
    await edge.sink.purge(keys)
    assert await edge.purged(keys) == set(keys)
    assert edge.requests() == [1] * len(edge.transports)
    assert edge.metric("tessera_purge_keys_total") == before + 3 * len(edge.labels)


async def test_no_keys_send_nothing_and_duplicates_are_sent_once(edge: Edge) -> None:
    await edge.sink.purge([])
    await edge.sink.purge(["", ""])
    assert edge.requests() == [0] * len(edge.transports)
    (key,) = page_keys(1)
    await edge.sink.purge([key, key, key])
    assert edge.requests() == [1] * len(edge.transports)
    for transport in edge.transports:
        sent = transport.requests[0]
        carried = sent.headers.get("xkey-purge") or sent.headers.get("surrogate-key")
        assert carried == key or sent.content == f'{{"tags":["{key}"]}}'.encode()


async def test_many_keys_are_split_into_requests_each_edge_accepts(edge: Edge) -> None:
    primed = page_keys(2)
    await edge.prime(primed)
    keys = [f"block:{unique('many')}-{index}" for index in range(700)] + primed
    await edge.sink.purge(keys)
    assert await edge.purged(primed) == set(primed)
    limits = {"fastly": 256, "cloudflare": 30, "varnish": 4000 // 20}
    for label, sent in zip(edge.labels, edge.requests(), strict=True):
        assert sent >= math.ceil(len(keys) / limits[label])


async def test_a_failing_edge_is_retried_with_backoff(edge: Edge) -> None:
    keys = page_keys(1)
    await edge.prime(keys)
    retries = edge.metric("tessera_purge_retries_total")
    edge.fail("unavailable", times=2)
    await edge.sink.purge(keys)
    assert await edge.purged(keys) == set(keys)
    assert edge.requests() == [3] * len(edge.transports)
    assert sorted(edge.sleeps) == sorted([0.2, 0.4] * len(edge.transports))
    assert edge.metric("tessera_purge_retries_total") == retries + 2 * len(edge.labels)


async def test_a_refused_connection_is_retried(edge: Edge) -> None:
    keys = page_keys(1)
    await edge.prime(keys)
    edge.fail("connect")
    await edge.sink.purge(keys)
    assert await edge.purged(keys) == set(keys)
    assert edge.sleeps == [0.2] * len(edge.transports)


async def test_a_rate_limit_is_waited_out_as_asked(edge: Edge) -> None:
    keys = page_keys(1)
    await edge.prime(keys)
    edge.fail("rate_limited", retry_after=1.0)
    await edge.sink.purge(keys)
    assert await edge.purged(keys) == set(keys)
    assert edge.sleeps == [1.0] * len(edge.transports)


async def test_a_rate_limit_asking_too_long_fails_at_once(edge: Edge) -> None:
    edge.fail("rate_limited", retry_after=60.0)
    with pytest.raises(PurgeUnavailable) as caught:
        await edge.sink.purge(page_keys(1))
    assert edge.sleeps == []
    assert edge.requests() == [1] * len(edge.transports)
    if len(edge.transports) == 1:
        assert isinstance(caught.value, PurgeRateLimited)
        assert caught.value.retry_after == 60.0


async def test_an_edge_down_for_good_fails_after_every_retry(edge: Edge) -> None:
    failures = edge.metric("tessera_purge_failures_total", reason="unavailable")
    edge.fail("unavailable", times=10)
    with pytest.raises(PurgeUnavailable) as caught:
        await edge.sink.purge(page_keys(1))
    assert edge.requests() == [RETRIES + 1] * len(edge.transports)
    assert "HTTP 5" in str(caught.value)
    assert edge.metric("tessera_purge_failures_total", reason="unavailable") == failures + len(
        edge.labels
    )


async def test_refused_credentials_fail_at_once_and_never_show_the_token(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    edge.fail("unauthorized")
    with pytest.raises(PurgeRejected) as caught:
        await edge.sink.purge(page_keys(1))
    assert edge.requests() == [1] * len(edge.transports)
    assert edge.sleeps == []
    message = str(caught.value)
    assert "HTTP 40" in message
    for secret in (FASTLY_TOKEN, CLOUDFLARE_TOKEN):
        assert secret not in message
        assert secret not in caplog.text


async def test_a_closed_sink_sends_nothing(edge: Edge) -> None:
    await edge.sink.aclose()
    with pytest.raises(RuntimeError):
        await edge.sink.purge(page_keys(1))
    assert edge.requests() == [0] * len(edge.transports)


# Vendor details the behaviour suite does not cover.


async def test_fastly_soft_purges_when_asked() -> None:
    fake = FakeFastly()
    transport = httpx.MockTransport(fake.handle)
    async with FastlyPurgeSink(
        FASTLY_SERVICE, FASTLY_TOKEN, soft=True, transport=transport
    ) as sink:
        await sink.purge(["page:home"])
    assert fake.soft == [True]


async def test_a_cloudflare_200_without_success_is_a_failure() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = {"success": False, "errors": [{"code": 1134, "message": "Purge quota"}]}
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(handle)
    async with CloudflarePurgeSink(CLOUDFLARE_ZONE, CLOUDFLARE_TOKEN, transport=transport) as sink:
        with pytest.raises(PurgeRejected, match="1134 Purge quota"):
            await sink.purge(["page:home"])


def test_sinks_refuse_half_a_configuration() -> None:
    with pytest.raises(ValueError, match="FASTLY_API_TOKEN"):
        FastlyPurgeSink(FASTLY_SERVICE, "")
    with pytest.raises(ValueError, match="CLOUDFLARE_ZONE_ID"):
        CloudflarePurgeSink("", CLOUDFLARE_TOKEN)
    with pytest.raises(ValueError, match="VARNISH_URLS"):
        VarnishPurgeSink([])


@pytest.mark.slow
async def test_varnish_purges_reach_every_host_even_when_one_is_down(
    varnish: Varnish, origin: OriginProcess
) -> None:
    keys = page_keys(1)
    prime, purged = varnish_checks(varnish)
    await prime(keys)
    down = f"http://127.0.0.1:{free_port()}"
    alias = varnish.url.replace("127.0.0.1", "localhost")
    sleeps: list[float] = []
    transport = InjectingTransport(httpx.AsyncHTTPTransport())
    async with VarnishPurgeSink(
        [varnish.url, down, alias], transport=transport, retries=1, sleep=Parts(sleeps).sleep
    ) as sink:
        with pytest.raises(PurgeUnavailable) as caught:
            await sink.purge(keys)
    assert await purged(keys) == set(keys)
    assert caught.value.target == down
    hosts = sorted(str(request.url.netloc.decode()) for request in transport.requests)
    assert hosts == sorted([varnish.url[7:], down[7:], down[7:], alias[7:]])


# The invalidator's bound on how long a webhook waits for its purge.


@pytest.fixture
async def content() -> AsyncIterator[ContentCache]:
    cache = open_cache("memory://")
    content = ContentCache(CountingAdapter({"home": parsed("home")}, name="purgecms"), cache)
    yield content
    await content.aclose()
    await close_cache(cache)


async def test_a_slow_purge_never_holds_the_webhook_past_its_deadline(
    content: ContentCache,
) -> None:
    fake = FakeFastly()
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return fake.handle(request)

    sink = FastlyPurgeSink(FASTLY_SERVICE, FASTLY_TOKEN, transport=httpx.MockTransport(slow))
    invalidator = Invalidator(content, sink, purge_deadline=0.2)
    deferred = metric("tessera_purge_deferred_total")
    async with asyncio.timeout(3):  # generous: the point is that it returns at all
        keys = await invalidator.publish(ChangedKeys(pages=frozenset({"home"})))
    assert keys == ["page:home"]
    assert fake.purged == []
    assert metric("tessera_purge_deferred_total") == deferred + 1
    # The purge goes on in the background; closing waits for it.
    release.set()
    await invalidator.aclose()
    assert fake.purged == ["page:home"]
    await sink.aclose()


async def test_a_failed_purge_is_logged_not_raised(
    content: ContentCache, caplog: pytest.LogCaptureFixture
) -> None:
    transport = InjectingTransport(httpx.MockTransport(FakeCloudflare().handle))
    transport.failures.append(FakeCloudflare.failure("unauthorized"))
    async with CloudflarePurgeSink(
        CLOUDFLARE_ZONE, "wrong-" + CLOUDFLARE_TOKEN, transport=transport
    ) as sink:
        invalidator = Invalidator(content, sink)
        assert await invalidator.publish(ChangedKeys(pages=frozenset({"home"}))) == ["page:home"]
        await invalidator.aclose()
    assert "edge purge of page:home failed" in caplog.text
    assert "10000 Authentication error" in caplog.text
    assert CLOUDFLARE_TOKEN not in caplog.text
