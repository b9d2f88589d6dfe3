"""Replicas: the near-cache's change stream, and two gateways on one database and one Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, WriteConcern

from gateway.embedded_mongo import EmbeddedMongo, free_port
from gateway.settings import DEMO_CONTENT_DIR
from profiles.near_cache import NearCache, ProfileFeed
from tests.graphql_helpers import PUBLISHABLE_KEY

Mongo = AsyncMongoClient[dict[str, Any]]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> float:
    """Seconds until `check` holds (fails after `seconds`)."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not within the deadline"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_the_feed_applies_writes_made_elsewhere(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name]["profiles"]
    await collection.insert_one({"_id": "v1", "traits": {"pageViews": 1}})
    cache = NearCache()
    async with ProfileFeed(collection, cache) as feed:
        assert feed.healthy
        cache.put("v1", await collection.find_one({"_id": "v1"}))
        await collection.update_one({"_id": "v1"}, {"$set": {"traits.pageViews": 2}})

        async def updated() -> bool:
            entry = cache.get("v1")
            return entry is not None and entry.profile["traits"]["pageViews"] == 2  # type: ignore[index]

        await eventually(updated)
        cache.put("v2", None)  # a new visitor, absent
        await collection.insert_one({"_id": "v2", "traits": {"pageViews": 1}})

        async def inserted() -> bool:
            entry = cache.get("v2")
            return entry is not None and entry.profile is not None

        await eventually(inserted)
        await collection.delete_one({"_id": "v1"})

        async def deleted() -> bool:
            return cache.get("v1") is None

        await eventually(deleted)
    assert not feed.healthy


async def test_the_feed_resumes_after_the_server_restarts(own_server: EmbeddedMongo) -> None:
    client: Mongo = AsyncMongoClient(own_server.uri, tz_aware=True, serverSelectionTimeoutMS=2000)
    # Journaled: the document survives the kill below.
    collection = client["feed"].get_collection("profiles", write_concern=WriteConcern(j=True))
    await collection.insert_one({"_id": "v", "n": 1})
    cache = NearCache()
    try:
        async with ProfileFeed(collection, cache, retry_initial=0.05, retry_max=0.2) as feed:
            cache.put("v", await collection.find_one({"_id": "v"}))
            own_server.kill()

            async def broken() -> bool:
                return not feed.healthy

            await eventually(broken)
            own_server.start()

            async def healthy() -> bool:
                return feed.healthy

            await eventually(healthy, 30)
            cache.put("v", await collection.find_one({"_id": "v"}))
            await collection.update_one({"_id": "v"}, {"$set": {"n": 2}})

            async def followed() -> bool:
                entry = cache.get("v")
                return entry is not None and entry.profile["n"] == 2  # type: ignore[index]

            await eventually(followed)
            assert feed.restarts >= 1
    finally:
        await client.close()


class Gateway:
    def __init__(
        self, uri: str, database: str, state: Path, extra: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "MONGODB_URI": uri,
            "MONGODB_DATABASE": database,
            "STATE_DIR": str(state),
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
            "PUBLISHABLE_KEYS": PUBLISHABLE_KEY,
            "EDGE_KEY_SECRET": "shared-edge-secret",
            "MODEL_SIGNING_KEY": "shared-model-key",
            "RESPONSE_CACHE_SIZE": "0",
            **(extra or {}),
        }
        self.log = (state.parent / f"gateway-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("gateway not ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A copy of the demo content both gateways read (a test may publish into it)."""
    target = tmp_path / "content"
    shutil.copytree(DEMO_CONTENT_DIR, target)
    return target


def start_two(
    uri: str, database_name: str, tmp_path: Path, cache_url: str, content_dir: Path
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on one database, with `cache_url` as their content cache."""
    shared = {
        "CACHE_URL": cache_url,
        "CONTENT_DIR": str(content_dir),
        "CMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Long enough that only an invalidation can show B the change.
        "CONTENT_TTL": "600",
    }
    a = Gateway(uri, database_name, tmp_path / "a", shared)
    b = Gateway(uri, database_name, tmp_path / "b", shared)
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def two_gateways(
    mongo_server: EmbeddedMongo,
    database_name: str,
    tmp_path: Path,
    redis_url: str,
    content_dir: Path,
) -> Iterator[tuple[Gateway, Gateway]]:
    yield from start_two(mongo_server.uri, database_name, tmp_path, redis_url, content_dir)


@pytest.fixture
def two_gateways_without_redis(
    mongo_server: EmbeddedMongo, database_name: str, tmp_path: Path, content_dir: Path
) -> Iterator[tuple[Gateway, Gateway]]:
    """As `serve --workers 2` without Redis: a content cache each, one database."""
    yield from start_two(mongo_server.uri, database_name, tmp_path, "memory://", content_dir)


VISITOR = "{ visitor { audiences traits } }"
WEBHOOK_SECRET = "replica-webhook-secret"
TITLE = '{ page(slug: "about") { title } }'


async def views(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> int:
    response = await client.post(f"{url}/graphql", json={"query": VISITOR}, headers=headers)
    return int(response.json()["data"]["visitor"]["traits"]["pageViews"])


@pytest.mark.slow
async def test_an_event_taken_by_one_gateway_is_seen_by_the_other(
    two_gateways: tuple[Gateway, Gateway], mongo: Mongo
) -> None:
    a, b = two_gateways
    async with httpx.AsyncClient(timeout=10) as client:
        seen: list[float] = []
        for n in range(20):
            visitor = f"rw-{n}"
            headers = {"X-Visitor-Id": visitor}
            # Warm both near-caches with the visitor's (absent) profile.
            for gateway in (a, b):
                await client.post(
                    f"{gateway.url}/graphql", json={"query": VISITOR}, headers=headers
                )
            sent = await client.post(
                f"{a.url}/v1/events",
                json=[{"type": "page_view", "eventId": f"rw-{n}-1", "visitorId": visitor}],
                headers={"Authorization": f"Bearer {PUBLISHABLE_KEY}"},
            )
            assert sent.status_code == 200, sent.text

            # Read-your-writes on the gateway that took the event: at once.
            assert await views(client, a.url, headers) == 1

            async def on_b(headers: dict[str, str] = headers) -> bool:
                return await views(client, b.url, headers) == 1

            seen.append(await eventually(on_b, 5))
    # Timings belong in bench/; here only that every change arrived, well within 5 s.
    assert len(seen) == 20


@pytest.mark.slow
async def test_a_publish_webhook_sent_to_one_gateway_invalidates_the_other(
    two_gateways: tuple[Gateway, Gateway], content_dir: Path
) -> None:
    await publish_on_a_reaches_b(*two_gateways, content_dir)


@pytest.mark.slow
async def test_without_redis_the_webhook_reaches_the_other_through_mongodb(
    two_gateways_without_redis: tuple[Gateway, Gateway], content_dir: Path
) -> None:
    await publish_on_a_reaches_b(*two_gateways_without_redis, content_dir)


async def publish_on_a_reaches_b(a: Gateway, b: Gateway, content_dir: Path) -> None:
    """B shows a page published through a webhook sent to A, long before its TTL."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def title_on(url: str) -> str:
            response = await client.post(f"{url}/graphql", json={"query": TITLE})
            return str(response.json()["data"]["page"]["title"])

        before = await title_on(b.url)  # B caches the page (for CONTENT_TTL)
        assert before == "About Trailhead Outfitters"
        page = content_dir / "pages" / "about.yaml"
        page.write_text(page.read_text().replace(before, "About us, freshly published"))
        assert await title_on(b.url) == before  # still cached on B
        hooked = await client.post(
            f"{a.url}/webhooks/filesystem",
            json={"pages": ["about"]},
            headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
        )
        assert hooked.status_code == 200, hooked.text

        async def fresh_on_b() -> bool:
            return await title_on(b.url) == "About us, freshly published"

        await eventually(fresh_on_b, 5)
