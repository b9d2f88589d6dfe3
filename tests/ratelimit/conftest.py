"""A real redis-server, and gateways whose rate limits live in memory or in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
def cache_url(request: pytest.FixtureRequest) -> str:
    """`memory://`, or the session's Redis emptied of earlier tests' buckets."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@dataclass
class Gateway:
    """A running gateway; `client(ip)` talks to it from that socket address."""

    app: ASGIApp

    @asynccontextmanager
    async def client(self, ip: str = "203.0.113.10") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tessera.test") as c:
            yield c


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def gateway(settings: Settings, clock: Clock) -> GatewayFactory:
    """Start a gateway with `settings` changed by keyword arguments (no loopback exemption)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        changed = settings.model_copy(
            update={"seed_demo": False, "rate_limit_exempt": "", **overrides}
        )
        application = create_app(changed, clock=clock)
        async with LifespanManager(application) as manager:
            yield Gateway(manager.app)

    return start
