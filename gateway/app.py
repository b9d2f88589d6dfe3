"""The ASGI application: routes, and the lifespan that opens shared clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiocache import Cache
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from blocks.rendering import BlockRenderer
from cms_adapters.base import CMSAdapter
from cms_adapters.content_cache import ContentCache
from cms_adapters.filesystem import FilesystemAdapter
from gateway.embedded_mongo import EmbeddedMongo
from gateway.graphql_view import TesseraGraphQL
from gateway.page_cache import PageResponseCache
from gateway.settings import DEMO_DIR, Settings
from gateway.visitor import VisitorMiddleware
from profiles.audiences import AudienceCatalog, AudienceRepository
from profiles.reader import BudgetedProfileReader
from profiles.seed import seed_demo
from profiles.store import ProfileStore
from resolvers.context import Services
from resolvers.schema import build_schema

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The current time, timezone-aware (the default clock)."""
    return datetime.now(UTC)


def build_adapter(settings: Settings) -> CMSAdapter:
    """The CMS adapter the settings name."""
    if settings.cms == "filesystem":
        return FilesystemAdapter(settings.content_dir)
    raise ValueError(f"CMS: unknown CMS {settings.cms!r}")


def create_app(
    settings: Settings | None = None,
    *,
    adapter: CMSAdapter | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Starlette:
    """Build the gateway; shared clients open in its lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            if settings.mongodb_uri is not None:
                uri = settings.mongodb_uri.get_secret_value()
            else:
                embedded = EmbeddedMongo(settings.state_dir / "mongo")
                await asyncio.to_thread(embedded.start)
                stack.push_async_callback(asyncio.to_thread, embedded.stop)
                uri = embedded.uri
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                uri, tz_aware=True, appname="tessera", serverSelectionTimeoutMS=2000
            )
            stack.push_async_callback(client.close)
            database = client[settings.mongodb_database]
            store = ProfileStore(database)
            repository = AudienceRepository(database)
            if settings.seed_demo:
                try:
                    await seed_demo(
                        store, repository, DEMO_DIR / "audiences.yaml", DEMO_DIR / "profiles.yaml"
                    )
                except PyMongoError as exc:
                    logger.warning("demo data not seeded, MongoDB unavailable: %s", exc)
            audiences = AudienceCatalog(
                repository, refresh_seconds=settings.audience_refresh_seconds
            )
            await audiences.refresh()
            audiences.start()
            stack.push_async_callback(audiences.stop)
            cms = adapter or build_adapter(settings)
            stack.push_async_callback(cms.aclose)
            cache = Cache.from_url(settings.cache_url)
            stack.push_async_callback(cache.close)
            services = Services(
                content=ContentCache(cms, cache, ttl=settings.content_ttl),
                profiles=BudgetedProfileReader(store, budget=settings.profile_budget),
                store=store,
                audiences=audiences,
                clock=clock,
                keys=settings.key_ring(),
                renderer=BlockRenderer(settings.block_templates_dir),
            )
            app.state.services = services
            app.state.mongo = client
            yield {"services": services, "mongo": client}

    graphql = TesseraGraphQL(
        build_schema(max_depth=settings.max_query_depth),
        graphql_ide="graphiql" if settings.graphiql else None,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        client: AsyncMongoClient[dict[str, Any]] = request.state.mongo
        try:
            await asyncio.wait_for(client.admin.command("ping"), timeout=1.0)
        except (TimeoutError, PyMongoError):
            return JSONResponse({"status": "degraded", "mongodb": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready", "mongodb": "ok"})

    page_cache = (
        PageResponseCache(graphql, maxsize=settings.response_cache_size)
        if settings.response_cache_size
        else None
    )
    app = Starlette(
        routes=[
            Route(
                "/graphql",
                VisitorMiddleware(page_cache or graphql, secure_cookie=settings.cookie_secure),
                methods=["GET", "POST"],
            ),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
    app.state.page_cache = page_cache
    return app
