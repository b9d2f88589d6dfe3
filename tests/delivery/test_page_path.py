"""One page path: a page decided once per request, a CMS failure tried once; CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from blocks.parse import ParsedPage
from cms_adapters.errors import CMSUnavailable
from cms_adapters.filesystem import FilesystemAdapter
from gateway.app import create_app
from gateway.settings import DEMO_CONTENT_DIR, Settings
from tests.conftest import Clock
from tests.graphql_helpers import INGEST, PAGE_QUERY, graphql


class FlakyCMS(FilesystemAdapter):
    """The demo content, except that `broken` fails like a CMS outage; counts fetches."""

    def __init__(self) -> None:
        super().__init__(DEMO_CONTENT_DIR)
        self.fetches: list[str] = []

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        self.fetches.append(slug)
        if slug == "broken":
            raise CMSUnavailable(self.name, "connection refused")
        return await super().fetch_page(slug, preview=preview)


@pytest.fixture
def cms() -> FlakyCMS:
    return FlakyCMS()


@pytest.fixture
async def flaky(
    settings: Settings, clock: Clock, cms: FlakyCMS
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, adapter=cms, clock=clock)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_a_cms_failure_is_tried_once_per_request(
    flaky: httpx.AsyncClient, cms: FlakyCMS
) -> None:
    response = await graphql(flaky, PAGE_QUERY, {"slug": "broken"}, visitor="v")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "CONTENT_UNAVAILABLE"
    assert response.headers["cache-control"] == "private, no-store"
    assert cms.fetches == ["broken"]


async def test_the_same_page_under_aliases_is_fetched_and_decided_once(
    flaky: httpx.AsyncClient, cms: FlakyCMS
) -> None:
    query = '{ a: page(slug: "sale") { slug } b: page(slug: "sale") { title } }'
    response = await graphql(flaky, query, visitor="v")
    assert response.json()["data"]["a"]["slug"] == "sale"
    assert cms.fetches == ["sale"]


def _cors(origins: str) -> dict[str, str]:
    return {"cors_origins": origins}


@pytest.fixture
async def cors_client(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        settings.model_copy(update={"cors_origins": "https://shop.example"}), clock=clock
    )
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_cors_preflight_and_credentials_for_listed_origins(
    cors_client: httpx.AsyncClient,
) -> None:
    preflight = await cors_client.options(
        "/graphql",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = await graphql(
        cors_client, PAGE_QUERY, {"slug": "about"}, headers={"Origin": "https://shop.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert "ETag" in response.headers["access-control-expose-headers"]
    assert "Origin" in response.headers["vary"]
    refused = await cors_client.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # Without an Origin the response still varies on it, for the edge cache.
    plain = await graphql(cors_client, PAGE_QUERY, {"slug": "about"})
    assert "Origin" in plain.headers["vary"]
    events = await cors_client.options(
        "/v1/events",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert events.headers["access-control-allow-origin"] == "https://shop.example"
    sent = await cors_client.post(
        "/v1/events",
        json=[{"type": "page_view", "eventId": "c1", "visitorId": "cors-v"}],
        headers={**INGEST, "Origin": "https://shop.example"},
    )
    assert sent.status_code == 200
    assert sent.headers["access-control-allow-origin"] == "https://shop.example"


async def test_cors_origins_must_be_origins(settings: Settings, clock: Clock) -> None:
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        create_app(settings.model_copy(update=_cors("shop.example")), clock=clock)


async def test_same_site_none_cookies_are_secure(settings: Settings, clock: Clock) -> None:
    application = create_app(settings.model_copy(update={"cookie_same_site": "none"}), clock=clock)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/graphql", json={"query": "{ visitor { id } }"})
    cookie = response.headers["set-cookie"]
    assert "SameSite=None" in cookie
    assert "Secure" in cookie
