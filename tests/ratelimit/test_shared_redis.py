"""Replicas share budgets through Redis; a Redis outage never refuses or fails a request."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

import gateway.ratelimit as ratelimit
from gateway.ratelimit import Bucket, BucketStoreUnavailable, Limit, RateLimiter, RedisBuckets
from gateway.settings import Settings
from tests.ratelimit.conftest import GatewayFactory
from tests.redis_server import free_port, start_redis, stop_redis

TYPENAME = {"query": "{ __typename }"}


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def post(client: httpx.AsyncClient) -> int:
    return (await client.post("/graphql", json=TYPENAME)).status_code


async def test_two_replicas_sharing_redis_share_one_budget(
    gateway: GatewayFactory, redis_url: str
) -> None:
    budget = {
        "cache_url": redis_url,
        "rate_limit_graphql_ip_rate": 0.01,
        "rate_limit_graphql_ip_burst": 4,
    }
    async with (
        gateway(**budget) as one,
        gateway(**budget) as two,
        one.client("198.51.100.20") as a,
        two.client("198.51.100.20") as b,
    ):
        first = [await post(a), await post(b), await post(a), await post(b)]
        after = [await post(a), await post(b)]
        # Concurrently, from both replicas at once: still nothing over the budget.
        async with one.client("198.51.100.21") as c, two.client("198.51.100.21") as d:
            raced = await asyncio.gather(*(post(x) for _ in range(20) for x in (c, d)))
    assert first == [200] * 4
    assert after == [429, 429]
    assert (raced.count(200), raced.count(429)) == (4, 36)


async def test_memory_budgets_are_per_replica(gateway: GatewayFactory) -> None:
    budget = {"rate_limit_graphql_ip_rate": 0.01, "rate_limit_graphql_ip_burst": 1}
    async with (
        gateway(**budget) as one,
        gateway(**budget) as two,
        one.client() as a,
        two.client() as b,
    ):
        assert [await post(a), await post(b), await post(a)] == [200, 200, 429]


class RedisProcess:
    """A redis-server of one test's own, which it may stop and start on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_redis(self.port, self.folder)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_redis(self.process)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_redis_down_fails_open_to_local_buckets_then_recovers(
    gateway: GatewayFactory,
    own_redis: RedisProcess,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 0.2)
    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    errors_before = sample("tessera_rate_limit_backend_errors_total")
    budget = {
        "cache_url": own_redis.url,
        "rate_limit_graphql_ip_rate": 0.01,
        "rate_limit_graphql_ip_burst": 3,
    }
    async with (
        gateway(**budget) as one,
        gateway(**budget) as two,
        one.client() as a,
        two.client() as b,
    ):
        assert [await post(a), await post(b)] == [200, 200]  # shared: one token left
        own_redis.stop()
        # Redis is gone: no 500, no refusal for it; each replica limits alone (3 each).
        assert [await post(a) for _ in range(4)] == [200, 200, 200, 429]
        assert [await post(b) for _ in range(4)] == [200, 200, 200, 429]
        assert sample("tessera_rate_limit_degraded") == 1
        assert sample("tessera_rate_limit_backend_errors_total") >= errors_before + 2
        assert "tessera_rate_limit_backend_errors_total" in (await a.get("/metrics")).text
        outage = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(outage) == 2  # once per replica, not once per request

        own_redis.start()
        await asyncio.sleep(0.3)  # past the retry delay
        # Redis came back empty: a fresh shared budget of 3 for both replicas.
        assert [await post(a), await post(b), await post(a), await post(b)] == [
            200,
            200,
            200,
            429,
        ]
        assert sample("tessera_rate_limit_degraded") == 0
        assert any("Redis is back" in r.getMessage() for r in caplog.records)


BUCKET = Bucket("test:ip:down", "ip", Limit(rate=0.01, burst=2))


async def test_a_closed_port_is_unavailable_not_an_error() -> None:
    store = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BucketStoreUnavailable, match="ConnectionError"):
            await store.acquire([BUCKET])
    finally:
        await store.aclose()


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    connections: list[int] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0", connections
    server.close()
    await server.wait_closed()


async def test_a_hung_redis_costs_one_timeout_per_retry_delay(
    settings: Settings, silent_server: tuple[str, list[int]]
) -> None:
    url, connections = silent_server
    now = [0.0]
    limiter = RateLimiter(
        ratelimit.RateLimitPolicy.from_settings(settings), redis_url=url, clock=lambda: now[0]
    )
    async with limiter:
        first = await limiter.check([BUCKET])
        rest = [await limiter.check([BUCKET]) for _ in range(20)]
        assert len(connections) == 1  # the others were decided locally, without waiting
        now[0] += ratelimit.REDIS_RETRY_SECONDS
        await limiter.check([BUCKET])
        assert len(connections) == 2  # then Redis is tried again
    assert (first.allowed, first.remaining) == (True, 1)
    assert [v.allowed for v in rest] == [True] + [False] * 19
