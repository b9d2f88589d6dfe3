"""A publish webhook, through the whole gateway, purges a real varnishd (VARNISH_URLS)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from cms_adapters.purge import (
    CloudflarePurgeSink,
    FanOutPurgeSink,
    FastlyPurgeSink,
    VarnishPurgeSink,
)
from gateway.app import build_purge_sink, create_app
from gateway.settings import Settings
from tests.cms.vendors import FakeFilesystem
from tests.conftest import Clock
from tests.edge.conftest import OriginProcess, edge_client, page_url
from tests.edge.varnish import Varnish


@pytest.mark.slow
async def test_a_publish_webhook_purges_varnish_within_a_second(
    settings: Settings, clock: Clock, tmp_path: Path, varnish: Varnish, origin: OriginProcess
) -> None:
    vendor = FakeFilesystem(tmp_path / "content")
    # The gateway builds its Varnish sink from the setting, as in production.
    configured = settings.model_copy(update={"varnish_urls": f"{varnish.url}, "})
    application = create_app(configured, adapter=vendor.adapter(), clock=clock)
    # The contract origin tags its "home" page page:home, like the gateway's.
    pages = [page_url("home"), page_url("home", apq=False)]
    async with (
        LifespanManager(application) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway"
        ) as gateway,
        edge_client(varnish.url) as edge,
    ):
        for url in pages:
            await edge.get(url)
            assert (await edge.get(url)).headers["x-cache"] == "HIT"
        request = vendor.webhook("home")
        started = time.monotonic()
        response = await gateway.post(
            request.path, content=request.body, headers=dict(request.headers)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"invalidated": ["page:home"]}
        # Purged before the webhook was answered.
        for url in pages:
            assert (await edge.get(url)).headers["x-cache"] == "MISS"
        assert time.monotonic() - started < 1.0
        metrics = (await gateway.get("/metrics")).text
        assert 'tessera_purge_keys_total{sink="varnish"}' in metrics
        assert 'tessera_purge_requests_total{result="ok",sink="varnish"}' in metrics


async def test_settings_pick_the_sinks() -> None:
    assert build_purge_sink(Settings()) is None
    both = Settings(
        varnish_urls="http://a:6081,http://b:6081",
        cloudflare_zone_id="zone",
        cloudflare_api_token="cf-secret-token",
    )
    sink = build_purge_sink(both)
    assert isinstance(sink, FanOutPurgeSink)
    varnish, cloudflare = sink.sinks
    assert isinstance(varnish, VarnishPurgeSink)
    assert isinstance(cloudflare, CloudflarePurgeSink)
    assert varnish.urls == ["http://a:6081", "http://b:6081"]
    assert "cf-secret-token" not in repr(both)
    await sink.aclose()
    only = build_purge_sink(Settings(fastly_service_id="svc", fastly_api_token="t"))
    assert isinstance(only, FastlyPurgeSink)
    await only.aclose()
    with pytest.raises(ValueError, match="FASTLY_API_TOKEN"):
        build_purge_sink(Settings(fastly_service_id="service"))
