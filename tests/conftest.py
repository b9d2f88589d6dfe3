"""Shared fixtures: a real SecantusDB server per session, the app, an HTTP client."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient, MongoClient
from starlette.applications import Starlette
from starlette.types import ASGIApp

from delivery.services import Services
from gateway.app import create_app
from gateway.embedded_mongo import EmbeddedMongo
from gateway.settings import DEMO_CONTENT_DIR, Settings
from tests.graphql_helpers import ADMIN_KEY, PUBLISHABLE_KEY
from tests.redis_server import free_port, start_redis, stop_redis

# Gateways the tests start as processes (`serve`, its workers) take their settings from
# the environment: a stall of the shared CI machine must not turn their pages
# unpersonalized at the default 50 ms (tests of the budget set their own).
os.environ.setdefault("PROFILE_BUDGET_MS", "2000")
# Tests count the CMS calls their requests cause: no background reads of every page
# (the experiment sweep's own tests turn it on).
os.environ.setdefault("EXPERIMENT_SWEEP_SECONDS", "0")

# Before the demo's Black Friday banner starts, so decisions are deterministic.
FIXED_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock injected into the app."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """One real MongoDB-wire server (SecantusDB) for the whole session."""
    server = EmbeddedMongo(tmp_path_factory.mktemp("secantusdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (real, no persistence) for the whole session."""
    process = start_redis(port := free_port(), tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    stop_redis(process)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A server of this test's own, which it may kill and restart (same port and data)."""
    server = EmbeddedMongo(tmp_path / "db")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_name() -> str:
    """A fresh database per test, so tests never see each other's data."""
    return f"tessera_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(mongo_server: EmbeddedMongo, database_name: str, tmp_path: Path) -> Settings:
    return Settings(
        mongodb_uri=mongo_server.uri,
        mongodb_database=database_name,
        content_dir=DEMO_CONTENT_DIR,
        state_dir=tmp_path / "state",
        # A stall of the shared CI machine must not turn a page unpersonalized (it did at
        # 500 ms); the tests of the budget set their own.
        profile_budget_ms=2000,
        publishable_keys=PUBLISHABLE_KEY,
        admin_keys=ADMIN_KEY,
    )


@pytest.fixture
async def running_app(settings: Settings, clock: Clock) -> AsyncIterator[tuple[Starlette, ASGIApp]]:
    """The gateway with its lifespan running (clients open, demo data seeded).

    Yields the Starlette app and the ASGI callable that carries the lifespan state.
    """
    application = create_app(settings, clock=clock)
    async with LifespanManager(application) as manager:
        yield application, manager.app


@pytest.fixture
def app(running_app: tuple[Starlette, ASGIApp]) -> Starlette:
    return running_app[0]


@pytest.fixture
async def client(running_app: tuple[Starlette, ASGIApp]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=running_app[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://tessera.test") as client:
        yield client


@pytest.fixture
async def mongo(
    mongo_server: EmbeddedMongo, database_name: str
) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    """A direct driver connection, to check what the gateway stored."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_server.uri, tz_aware=True)
    yield client
    await client.drop_database(database_name)
    await client.close()


ServedGateway = tuple[httpx.AsyncClient, Services]


@pytest.fixture
def gateway(
    settings: Settings, clock: Clock
) -> Callable[..., AbstractAsyncContextManager[ServedGateway]]:
    """Start the gateway with setting overrides: `async with gateway(**overrides) as (c, s)`.

    Modules and folders with a `gateway` of their own (rate limits, persisted
    queries, webhooks) shadow this one.
    """

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[ServedGateway]:
        app = create_app(settings.model_copy(update=overrides), clock=clock)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
                yield client, app.state.services

    return start


@pytest.fixture
def db(
    mongo_server: EmbeddedMongo,
    database_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The database the CLIs (`python -m gateway ...` in process) find through the environment."""
    monkeypatch.setenv("MONGODB_URI", mongo_server.uri)
    monkeypatch.setenv("MONGODB_DATABASE", database_name)
    monkeypatch.setenv("MODEL_SIGNING_KEY", "cli-test-key")
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, tz_aware=True)
    yield client[database_name]
    client.drop_database(database_name)
    client.close()
