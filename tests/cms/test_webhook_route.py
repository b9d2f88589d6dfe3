"""`POST /webhooks/{cms}` through the whole gateway, for every adapter."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from cms_adapters.base import WebhookRequest
from cms_adapters.invalidation import LoggingPurgeSink
from gateway.app import create_app
from gateway.settings import Settings
from tests.cms.vendors import HTTP_VENDORS, FakeContentful, FakeFilesystem, FakeVendor
from tests.conftest import Clock
from tests.graphql_helpers import graphql

TITLE = "query Page($slug: String!) { page(slug: $slug) { title } }"


@pytest.fixture(params=["filesystem", *HTTP_VENDORS])
def vendor(request: pytest.FixtureRequest, tmp_path: Path) -> FakeVendor:
    if request.param == "filesystem":
        return FakeFilesystem(tmp_path / "content")
    return HTTP_VENDORS[request.param]()


@pytest.fixture
def sink() -> LoggingPurgeSink:
    return LoggingPurgeSink()


async def start(
    settings: Settings, clock: Clock, vendor: FakeVendor, sink: LoggingPurgeSink
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, adapter=vendor.adapter(), clock=clock, purge_sink=sink)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.fixture
async def gateway(
    settings: Settings, clock: Clock, vendor: FakeVendor, sink: LoggingPurgeSink
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in start(settings, clock, vendor, sink):
        yield client


async def title(client: httpx.AsyncClient, slug: str = "home") -> str:
    response = await graphql(client, TITLE, {"slug": slug}, visitor="v1")
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["page"]["title"])


async def send(client: httpx.AsyncClient, request: WebhookRequest) -> httpx.Response:
    return await client.post(request.path, content=request.body, headers=dict(request.headers))


async def test_a_publish_webhook_shows_the_new_content_on_the_next_request(
    gateway: httpx.AsyncClient, vendor: FakeVendor, sink: LoggingPurgeSink
) -> None:
    assert await title(gateway) == "Home"
    vendor.site["home"]["title"] = "Home, republished"
    vendor.sync()
    assert await title(gateway) == "Home"  # still cached
    response = await send(gateway, vendor.webhook("home"))
    assert response.status_code == 200, response.text
    assert response.json() == {"invalidated": ["page:home"]}
    assert await title(gateway) == "Home, republished"
    assert sink.purged == [["page:home"]]


@pytest.mark.parametrize("forgery", ["wrong-secret", "no-credentials"])
async def test_a_forged_webhook_changes_nothing(
    gateway: httpx.AsyncClient, vendor: FakeVendor, sink: LoggingPurgeSink, forgery: str
) -> None:
    assert await title(gateway) == "Home"
    vendor.site["home"]["title"] = "Defaced"
    vendor.sync()
    if forgery == "wrong-secret":
        request = vendor.webhook("home", secret="f" * 64)
    else:
        request = vendor.webhook_without_credentials("home")
    response = await send(gateway, request)
    assert response.status_code == 401
    assert "webhook rejected" in response.json()["error"]
    assert await title(gateway) == "Home"
    assert sink.purged == []


async def test_a_webhook_for_another_cms_is_404(
    gateway: httpx.AsyncClient, vendor: FakeVendor
) -> None:
    other = "sanity" if vendor.name != "sanity" else "strapi"
    response = await gateway.post(f"/webhooks/{other}", content=b"{}")
    assert response.status_code == 404
    assert vendor.name in response.json()["error"]


async def test_an_oversized_webhook_is_413(gateway: httpx.AsyncClient, vendor: FakeVendor) -> None:
    response = await gateway.post(f"/webhooks/{vendor.name}", content=b"x" * ((1 << 20) + 1))
    assert response.status_code == 413


async def test_an_authenticated_but_malformed_body_is_400_not_500(
    settings: Settings, clock: Clock, tmp_path: Path, sink: LoggingPurgeSink
) -> None:
    vendor = FakeFilesystem(tmp_path / "fs")
    async for client in start(settings, clock, vendor, sink):
        request = vendor.webhook("home")
        response = await client.post(
            request.path, content=b'{"pages": "home"}', headers=dict(request.headers)
        )
        assert response.status_code == 400
        assert "pages" in response.json()["error"]
        response = await client.post(request.path, content=b"{", headers=dict(request.headers))
        assert response.status_code == 400


async def test_the_page_stays_up_while_the_cms_is_down_within_the_stale_window(
    settings: Settings, clock: Clock, sink: LoggingPurgeSink
) -> None:
    vendor = FakeContentful()
    stale = settings.model_copy(
        update={
            "content_ttl": 0,
            "content_stale_while_revalidate": 0,
            "content_stale_if_error": 3600,
            "response_cache_size": 0,
        }
    )
    async for client in start(stale, clock, vendor, sink):
        assert await title(client) == "Home"
        vendor.failures += [vendor.server_error()] * 30
        for _ in range(3):
            assert await title(client) == "Home"
        # Never fetched before: nothing stale to serve, so the error shows.
        response = await graphql(client, TITLE, {"slug": "about"}, visitor="v1")
        assert response.json()["data"]["page"] is None
        assert response.json()["errors"][0]["extensions"]["code"] == "CONTENT_UNAVAILABLE"


async def test_with_redis_down_pages_render_and_webhooks_ask_for_a_retry(
    settings: Settings, clock: Clock, tmp_path: Path, sink: LoggingPurgeSink
) -> None:
    vendor = FakeFilesystem(tmp_path / "fs")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = settings.model_copy(update={"cache_url": f"redis://127.0.0.1:{port}/0"})
    async for client in start(down, clock, vendor, sink):
        assert await title(client) == "Home"  # fetched directly, cache errors logged
        response = await send(client, vendor.webhook("home"))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert "retry later" in response.json()["error"]
        assert sink.purged == []
