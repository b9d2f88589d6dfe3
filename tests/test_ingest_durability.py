"""Acknowledged events survive the database being killed mid-stream; outages answer 503."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from gateway.app import create_app
from gateway.embedded_mongo import EmbeddedMongo
from gateway.settings import Settings
from profiles.ingest import Ingestor
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


def refused(cause: str) -> float:
    """`tessera_events_refused_total{cause}` so far in this process."""
    return REGISTRY.get_sample_value("tessera_events_refused_total", {"cause": cause}) or 0.0


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


async def test_events_on_a_paused_database_answer_503_within_the_bound_then_land(
    own_server: EmbeddedMongo, ingest_client: httpx.AsyncClient
) -> None:
    first = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
    assert first.status_code == 200, first.text
    assert own_server.process is not None
    pid = own_server.process.pid
    refused_before = {cause: refused(cause) for cause in ("stalled", "unavailable")}
    os.kill(pid, signal.SIGSTOP)  # the database stops answering anything: a stall, not load
    try:
        started = time.monotonic()
        stalled = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
        waited = time.monotonic() - started
        assert stalled.status_code == 503, stalled.text
        assert stalled.headers["retry-after"].isdigit()
        # submit_timeout (2 s) without a reply, checked every 0.25 s; never a hang.
        assert 1.5 < waited < 4.0, waited
        # Nothing queues behind the stalled commit: the next request is refused at once.
        started = time.monotonic()
        queued = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
        assert queued.status_code == 503, queued.text
        assert time.monotonic() - started < 1.0
        # Every refused event is counted, by why: waited on the stall, then refused at once.
        assert refused("stalled") - refused_before["stalled"] == 10
        assert refused("unavailable") - refused_before["unavailable"] == 10
    finally:
        os.kill(pid, signal.SIGCONT)
    # The database answers again: the stalled commit finishes and new events land.
    for _ in range(200):
        again = await ingest_client.post("/v1/events", json=batch(), headers=INGEST)
        if again.status_code == 200:
            break
        assert again.status_code == 503, again.text
        await asyncio.sleep(0.1)
    assert again.status_code == 200, again.text


async def test_a_slow_database_that_still_answers_is_waited_for(own_server: EmbeddedMongo) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own_server.uri, tz_aware=True)
    try:
        now = time.monotonic()
        answered = now
        ingestor = Ingestor(
            client["tessera_slow"], clock=Clock(), answered=lambda: answered, max_wait_seconds=10
        )
        assert not ingestor.behind()  # no commit in flight
        ingestor._commit_started = now - 3.0  # past submit_timeout (2 s)
        # Slow enough that exposures hold back, whether or not the database still answers.
        assert ingestor.behind()
        # The database answered a moment ago (someone's command): loaded, not stalled.
        assert not ingestor._stalled()
        answered = now - 2.5  # nothing for 2.5 s: stalled
        assert ingestor._stalled()
        answered = now
        ingestor._commit_started = now - 11.0  # answering, but this commit is past the cap
        assert ingestor._stalled()
        # Without a way to tell, a commit past submit_timeout is stalled (the old rule).
        blind = Ingestor(client["tessera_slow"], clock=Clock())
        blind._commit_started = now - 3.0
        assert blind._stalled()
    finally:
        await client.close()
