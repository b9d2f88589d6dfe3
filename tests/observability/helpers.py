"""Scraping `/metrics` and running an app with changed settings, for the observability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from cms_adapters.base import CMSAdapter
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    """Every sample on `/metrics`, keyed `name{label=value,...}` (labels sorted)."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def moved(before: dict[str, float], after: dict[str, float], key: str) -> float:
    """How much one sample grew between two scrapes (absent counts as 0)."""
    return after.get(key, 0.0) - before.get(key, 0.0)


@asynccontextmanager
async def gateway(
    settings: Settings, *, adapter: CMSAdapter | None = None, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A running gateway with `changes` applied to `settings`, and a client for it."""
    application = create_app(settings.model_copy(update=changes), adapter=adapter, clock=Clock())
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tessera.test") as client:
            yield client
