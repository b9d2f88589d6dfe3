"""Responses reused across visitors with identical decisions, and only then."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.response_cache import CachedBody, ResponseCache
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import INGEST, PAGE_QUERY, graphql, variants

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"


@pytest.fixture
async def uncached_client(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.model_copy(update={"response_cache_size": 0}), clock=clock)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_same_decisions_share_a_response_other_decisions_do_not(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    cache: ResponseCache = app.state.response_cache
    first = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="new-1")
    assert (cache.hits, cache.misses) == (0, 1)
    # Another new visitor: same decisions, same bytes, served without execution.
    second = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="new-2")
    assert (cache.hits, cache.misses) == (1, 1)
    assert second.content == first.content
    vip = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="demo-vip")
    assert (cache.hits, cache.misses) == (1, 2)
    assert variants(vip.json()["data"]["page"])["home-hero"] == "vip-early-access"
    assert variants(second.json()["data"]["page"])["home-hero"] == "welcome-offer"
    # Headers are still per request: the first presented no edge key (private, and it
    # hands one out), the second presents it (the client keeps cookies): shareable.
    assert first.headers["cache-control"] == "private, no-store"
    assert "tsr_ek=" in first.headers["set-cookie"]
    assert second.headers["x-tessera-cache-scope"] == "audience"
    assert "set-cookie" not in second.headers


async def test_a_visitor_whose_decisions_change_gets_a_new_response(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    before = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="changing")
    for _ in range(3):
        await graphql(
            client,
            "mutation { track(event: {type: PAGE_VIEW}) { accepted } }",
            visitor="changing",
            headers=INGEST,
        )
    after = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="changing")
    assert variants(before.json()["data"]["page"])["home-hero"] == "welcome-offer"
    assert variants(after.json()["data"]["page"])["home-hero"] == "welcome-back"


async def test_new_content_version_is_never_served_from_old_responses(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    cache: ResponseCache = app.state.response_cache
    await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="a")
    await app.state.services.content.invalidate("home")
    await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="b")
    assert (cache.hits, cache.misses) == (0, 2)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param('{ visitor { id audiences } page(slug: "home") { slug } }', id="visitor"),
        pytest.param("mutation { track(event: {type: CLICK}) { accepted } }", id="mutation"),
        pytest.param('{ page(slug: "nope") { slug } }', id="error"),
        pytest.param('{ page(slug: "home") @include(if: true) { slug } }', id="directive"),
    ],
)
async def test_queries_outside_the_plan_are_never_cached(
    client: httpx.AsyncClient, app: Starlette, query: str
) -> None:
    cache: ResponseCache = app.state.response_cache
    for visitor in ("x1", "x2"):
        response = await graphql(client, query, visitor=visitor)
        assert response.status_code == 200
    assert cache.hits == 0
    assert len(cache) == 0


async def test_get_requests_and_accept_variants(client: httpx.AsyncClient, app: Starlette) -> None:
    cache: ResponseCache = app.state.response_cache
    params = {"query": '{ page(slug: "about") { title blocks { id variantId } } }'}
    one = await client.get("/graphql", params=params, headers={"X-Visitor-Id": "g1"})
    two = await client.get("/graphql", params=params, headers={"X-Visitor-Id": "g2"})
    assert one.status_code == two.status_code == 200
    assert one.content == two.content
    assert cache.hits == 1
    spec = await client.get(
        "/graphql",
        params=params,
        headers={"X-Visitor-Id": "g3", "Accept": "application/graphql-response+json"},
    )
    assert spec.headers["content-type"].startswith("application/graphql-response+json")
    assert cache.hits == 1  # a different media type is a different response


CASES = [
    pytest.param("demo-vip", {}, {}, id="vip"),
    pytest.param("demo-cart", {}, {}, id="cart-condition"),
    pytest.param("new", {"User-Agent": IPHONE, "CF-IPCountry": "DE"}, {}, id="mobile-dach"),
    pytest.param("new", {}, {"context": {"device": "MOBILE", "country": "at"}}, id="context"),
    pytest.param("demo-returning", {}, {"locale": "de-DE"}, id="locale"),
]


@pytest.mark.parametrize(("visitor", "headers", "variables"), CASES)
async def test_cached_responses_equal_freshly_executed_ones(
    client: httpx.AsyncClient,
    uncached_client: httpx.AsyncClient,
    visitor: str,
    headers: dict[str, str],
    variables: dict[str, Any],
) -> None:
    request = {"slug": "home", **variables}
    expected = await graphql(uncached_client, PAGE_QUERY, request, visitor=visitor, headers=headers)
    for _ in range(2):  # a miss, then a hit
        got = await graphql(client, PAGE_QUERY, request, visitor=visitor, headers=headers)
        assert json.loads(got.content) == json.loads(expected.content)
    assert "errors" not in expected.json()


def test_the_cache_is_bounded_in_bytes_as_well_as_in_entries() -> None:
    cache = ResponseCache(maxsize=4096, max_bytes=1_000_000)
    body = CachedBody(b"x" * 40_000, "application/json")
    for n in range(200):  # 200 entries of 60 KB (a 20 KB query and a 40 KB body)
        cache.put((f"{n:05d}" + "q" * 20_000, None, "{}", "application/json", ()), body)
    assert cache.bytes <= 1_000_000
    assert len(cache) == 1_000_000 // (40_000 + 20_005 + len("{}") + len("application/json"))
    assert cache.get((f"{199:05d}" + "q" * 20_000, None, "{}", "application/json", ())) is body
    assert cache.get((f"{0:05d}" + "q" * 20_000, None, "{}", "application/json", ())) is None
    # Replacing an entry counts its new size, not both.
    key = ("again", None, "{}", "application/json", ())
    cache.put(key, CachedBody(b"a" * 10, "application/json"))
    before = cache.bytes
    cache.put(key, CachedBody(b"b" * 20, "application/json"))
    assert cache.bytes == before + 10
    # One entry larger than a sixteenth of the budget is not kept at all.
    cache.put(("huge", None, "{}", "application/json", ()), CachedBody(b"x" * 70_000, "x"))
    assert cache.get(("huge", None, "{}", "application/json", ())) is None
