"""Acknowledged events survive the database being killed mid-stream; outages answer 503."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from gateway.app import create_app
from gateway.embedded_mongo import EmbeddedMongo
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import INGEST, PUBLISHABLE_KEY

pytestmark = pytest.mark.slow


@pytest.fixture
async def ingest_client(
    own_server: EmbeddedMongo, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        mongodb_uri=own_server.uri,
        state_dir=tmp_path / "state",
        publishable_keys=PUBLISHABLE_KEY,
        seed_demo=False,
    )
    app = create_app(settings, clock=Clock())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def batch(size: int = 10) -> list[dict[str, Any]]:
    visitor = f"v{uuid.uuid4().hex[:6]}"
    return [
        {"type": "page_view", "eventId": uuid.uuid4().hex, "visitorId": visitor}
        for _ in range(size)
    ]


async def test_every_acknowledged_event_survives_a_crash(
    own_server: EmbeddedMongo, ingest_client: httpx.AsyncClient
) -> None:
    acknowledged: list[str] = []
    unavailable: list[httpx.Response] = []
    stop = asyncio.Event()

    async def producer() -> None:
        while not stop.is_set():
            events = batch()
            response = await ingest_client.post("/v1/events", json=events, headers=INGEST)
            if response.status_code == 200:
                acknowledged.extend(e["eventId"] for e in events)
            else:
                assert response.status_code == 503, response.text
                unavailable.append(response)
                await asyncio.sleep(0.05)

    producers = [asyncio.create_task(producer()) for _ in range(4)]
    while len(acknowledged) < 300:  # noqa: ASYNC110 (polling a plain list)
        await asyncio.sleep(0.01)
    await asyncio.to_thread(own_server.kill)  # SIGKILL, mid-stream
    before_restart = len(acknowledged)
    # Longer than the driver's server selection timeout (2 s): requests must fail.
    await asyncio.sleep(3.0)
    await asyncio.to_thread(own_server.start)
    deadline = asyncio.get_running_loop().time() + 30
    while len(acknowledged) < before_restart + 300:
        assert asyncio.get_running_loop().time() < deadline, "ingestion did not recover"
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*producers)
    await _wait_ready(ingest_client)

    assert unavailable, "the outage was never noticed"
    for response in unavailable:
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"].startswith("No events were accepted")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own_server.uri)
    try:
        stored = {
            doc["_id"]
            async for doc in client["tessera"]["events"].find(
                {"_id": {"$in": acknowledged}}, {"_id": 1}
            )
        }
    finally:
        await client.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events were lost"


async def test_outage_answers_503_and_accepts_nothing(
    own_server: EmbeddedMongo, ingest_client: httpx.AsyncClient
) -> None:
    own_server.kill()
    response = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    # While the outage lasts, requests are refused at once rather than queued.
    again = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
    assert again.status_code == 503
    # Back up before teardown: closing a driver whose monitor is mid-connect to a
    # dead server leaks that socket (a pymongo quirk), which the suite treats as an error.
    await asyncio.to_thread(own_server.start)
    await _wait_ready(ingest_client)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("MongoDB did not come back")
