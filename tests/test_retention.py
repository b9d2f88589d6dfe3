"""Raw events expire after the configured retention (TTL index), on the real server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from gateway.app import create_app
from gateway.embedded_mongo import free_port
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import INGEST, PUBLISHABLE_KEY

pytestmark = pytest.mark.slow


@pytest.fixture
def sweeping_server(tmp_path: Path) -> Iterator[str]:
    """A SecantusDB server whose TTL sweep runs every half second; yields its URI."""
    port = free_port()
    launcher = Path(__file__).with_name("fast_ttl_server.py")
    process = subprocess.Popen(
        [sys.executable, str(launcher), str(port), str(tmp_path / "db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the TTL test server did not start"
                assert process.poll() is None, "the TTL test server exited"
                time.sleep(0.05)
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        process.terminate()
        process.wait(15)


async def test_events_older_than_the_retention_expire(sweeping_server: str, tmp_path: Path) -> None:
    # TTL compares with the server's real clock, so this test's clock is real time.
    clock = Clock(datetime.now(UTC) - timedelta(days=2))
    settings = Settings(
        mongodb_uri=sweeping_server,
        state_dir=tmp_path / "state",
        publishable_keys=PUBLISHABLE_KEY,
        seed_demo=False,
        event_retention_days=1,
    )
    app = create_app(settings, clock=clock)
    old, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def send(event_id: str) -> None:
                body = [{"type": "page_view", "eventId": event_id, "visitorId": "ttl"}]
                response = await client.post("/v1/events", json=body, headers=INGEST)
                assert response.json()["accepted"] == 1

            await send(old)  # received two days ago
            clock.now = datetime.now(UTC)
            await send(fresh)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sweeping_server)
    try:
        events = mongo["tessera"]["events"]
        for _ in range(100):
            if await events.find_one({"_id": old}) is None:
                break
            await asyncio.sleep(0.1)
        assert await events.find_one({"_id": old}) is None
        assert await events.find_one({"_id": fresh}) is not None
        # The profile is not raw data: it stays until erased.
        assert await mongo["tessera"]["profiles"].find_one({"_id": "ttl"}) is not None
    finally:
        await mongo.close()


async def test_exposures_older_than_their_retention_expire(
    sweeping_server: str, tmp_path: Path
) -> None:
    settings = Settings(
        mongodb_uri=sweeping_server,
        state_dir=tmp_path / "state",
        seed_demo=False,
        exposure_retention_days=1,
    )
    async with LifespanManager(create_app(settings)):
        pass  # the lifespan creates the indexes
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sweeping_server, tz_aware=True)
    try:
        exposures = mongo["tessera"]["exposures"]
        now = datetime.now(UTC)
        await exposures.insert_many(
            [
                {"_id": "old", "visitorId": "v", "ts": now - timedelta(days=2), "blocks": []},
                {"_id": "fresh", "visitorId": "v", "ts": now, "blocks": []},
            ]
        )
        for _ in range(100):
            if await exposures.find_one({"_id": "old"}) is None:
                break
            await asyncio.sleep(0.1)
        assert await exposures.find_one({"_id": "old"}) is None
        assert await exposures.find_one({"_id": "fresh"}) is not None
    finally:
        await mongo.close()
