"""The ASGI application: routes, and the lifespan that opens shared clients."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from blocks.experiments import Allocation
from blocks.rendering import BlockRenderer
from cms_adapters.base import CMSAdapter
from cms_adapters.cache_backend import close_cache, is_redis, open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.filesystem import FilesystemAdapter
from cms_adapters.invalidation import Invalidator, PurgeSink
from gateway.body_limit import BodyLimit
from gateway.embedded_mongo import EmbeddedMongo
from gateway.events_endpoint import events_endpoint
from gateway.graphql_view import TesseraGraphQL
from gateway.last_resort import LastResort
from gateway.metrics import metrics_endpoint
from gateway.page_cache import PageResponseCache
from gateway.ratelimit import RateLimiter, RateLimitMiddleware, RateLimitPolicy
from gateway.settings import DEMO_DIR, Settings
from gateway.visitor import VisitorMiddleware
from gateway.webhooks import webhook
from profiles.audiences import AudienceCatalog, AudienceRepository
from profiles.indexes import ensure_indexes
from profiles.ingest import ConsentDefaults, Ingestor
from profiles.reader import BudgetedProfileReader
from profiles.seed import seed_demo
from profiles.sticky import StickyBucketWriter
from profiles.store import ProfileStore
from resolvers.context import IngestLimits, Services
from resolvers.extensions.query_cost import QueryLimits
from resolvers.schema import build_schema
from scoring.drift_monitor import DriftMonitor
from scoring.exposures import EXPOSURES, ExposureLog
from scoring.registry import ModelRegistry, signing_key_from
from scoring.serving import ModelServer

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The current time, timezone-aware (the default clock)."""
    return datetime.now(UTC)


def _required(settings: Settings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        if not secret:
            raise ValueError(f"{name.upper()}: required when CMS={settings.cms}")


def build_adapter(settings: Settings) -> CMSAdapter:
    """The CMS adapter the settings name (each holds one shared httpx client)."""
    secret = settings.cms_webhook_secret.get_secret_value()
    http: dict[str, Any] = {"timeout": settings.cms_timeout, "retries": settings.cms_retries}
    if settings.cms == "filesystem":
        return FilesystemAdapter(settings.content_dir, webhook_secret=secret)
    if settings.cms == "contentful":
        from cms_adapters.contentful import ContentfulAdapter

        _required(settings, "contentful_space_id", "contentful_access_token")
        return ContentfulAdapter(
            settings.contentful_space_id,
            settings.contentful_access_token.get_secret_value(),
            preview_token=settings.contentful_preview_token.get_secret_value(),
            environment=settings.contentful_environment,
            webhook_secret=secret,
            **http,
        )
    if settings.cms == "strapi":
        from cms_adapters.strapi import StrapiAdapter

        _required(settings, "strapi_url", "strapi_token")
        return StrapiAdapter(
            settings.strapi_url,
            settings.strapi_token.get_secret_value(),
            webhook_secret=secret,
            **http,
        )
    if settings.cms == "sanity":
        from cms_adapters.sanity import SanityAdapter

        _required(settings, "sanity_project_id", "sanity_dataset")
        return SanityAdapter(
            settings.sanity_project_id,
            settings.sanity_dataset,
            token=settings.sanity_token.get_secret_value(),
            api_version=settings.sanity_api_version,
            webhook_secret=secret,
            **http,
        )
    if settings.cms == "directus":
        from cms_adapters.directus import DirectusAdapter

        _required(settings, "directus_url", "directus_token")
        return DirectusAdapter(
            settings.directus_url,
            settings.directus_token.get_secret_value(),
            webhook_secret=secret,
            **http,
        )
    raise ValueError(f"CMS: unknown CMS {settings.cms!r}")


def create_app(
    settings: Settings | None = None,
    *,
    adapter: CMSAdapter | None = None,
    clock: Callable[[], datetime] = utc_now,
    purge_sink: PurgeSink | None = None,
) -> Starlette:
    """Build the gateway; shared clients open in its lifespan."""
    settings = settings or Settings()
    # Shares Redis with the content cache when CACHE_URL names one, so replicas share budgets.
    limiter = RateLimiter(
        RateLimitPolicy.from_settings(settings),
        redis_url=settings.cache_url if is_redis(settings.cache_url) else None,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            if settings.mongodb_uri is not None:
                uri = settings.mongodb_uri.get_secret_value()
            else:
                embedded = EmbeddedMongo(settings.state_dir / "mongo", advertise=True)
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
            try:
                await ensure_indexes(
                    database,
                    retention_days=settings.event_retention_days,
                    exposure_retention_days=settings.exposure_retention_days,
                )
            except PyMongoError as exc:
                logger.warning("indexes not ensured, MongoDB unavailable: %s", exc)
            ingestor = Ingestor(
                database,
                clock=clock,
                half_life_days=settings.interest_half_life_days,
                consent=ConsentDefaults(
                    analytics=settings.default_analytics_consent,
                    personalization=settings.default_personalization_consent,
                ),
                window=settings.event_commit_window_ms / 1000.0,
            )
            ingestor.start()
            stack.push_async_callback(ingestor.stop)
            await stack.enter_async_context(limiter)
            cms = adapter or build_adapter(settings)
            stack.push_async_callback(cms.aclose)
            cache = open_cache(settings.cache_url)
            stack.push_async_callback(close_cache, cache)
            content = ContentCache(
                cms,
                cache,
                ttl=settings.content_ttl,
                stale_while_revalidate=settings.content_stale_while_revalidate,
                stale_if_error=settings.content_stale_if_error,
                not_found_ttl=settings.content_not_found_ttl,
            )
            stack.push_async_callback(content.aclose)
            redis_url = settings.cache_url if is_redis(settings.cache_url) else None
            invalidator = Invalidator(content, purge_sink, redis_url=redis_url)
            await invalidator.start()
            stack.push_async_callback(invalidator.aclose)
            # Pushed after the client: the stack closes both before the client closes.
            registry = ModelRegistry(
                database,
                signing_key_from(settings.model_signing_key.get_secret_value(), settings.state_dir),
            )
            scorer = ModelServer(
                registry, budget=settings.scoring_budget, poll_seconds=settings.model_poll_seconds
            )
            await scorer.start()
            stack.push_async_callback(scorer.aclose)
            reader = BudgetedProfileReader(store, budget=settings.profile_budget)
            exposures = ExposureLog(
                database[EXPOSURES],
                max_queue=settings.exposure_queue_size,
                batch_size=settings.exposure_batch_size,
                defer_while=reader.under_pressure,
            )
            exposures.start()
            stack.push_async_callback(exposures.aclose)
            sticky = StickyBucketWriter(
                store.collection,
                clock=clock,
                consent={
                    "analytics": settings.default_analytics_consent,
                    "personalization": settings.default_personalization_consent,
                },
                max_queue=settings.sticky_bucket_queue_size,
            )
            sticky.start()
            stack.push_async_callback(sticky.aclose)
            if settings.drift_interval_seconds:
                drift = DriftMonitor(
                    database,
                    registry,
                    interval=settings.drift_interval_seconds,
                    window=timedelta(hours=settings.drift_window_hours),
                    clock=clock,
                    # The model this gateway already loaded and verified: no second download.
                    current=lambda: scorer.model,
                )
                await drift.start()
                stack.push_async_callback(drift.aclose)
            services = Services(
                content=content,
                profiles=reader,
                store=store,
                audiences=audiences,
                clock=clock,
                keys=settings.key_ring(),
                ingestor=ingestor,
                ingest_limits=IngestLimits(
                    max_body_bytes=settings.max_event_body_bytes,
                    max_events=settings.max_events_per_batch,
                    max_skew_seconds=settings.event_max_skew_seconds,
                ),
                renderer=BlockRenderer(settings.block_templates_dir),
                scorer=scorer,
                exposures=exposures,
                rng=random.Random(),
                exploration_epsilon=settings.exploration_epsilon,
                cold_start_epsilon=settings.cold_start_epsilon,
                default_analytics_consent=settings.default_analytics_consent,
                allocation=Allocation(holdout=settings.experiments_holdout),
                sticky=sticky,
            )
            app.state.services = services
            app.state.mongo = client
            app.state.invalidator = invalidator
            yield {"services": services, "mongo": client, "invalidator": invalidator}

    limits = QueryLimits(
        max_depth=settings.max_query_depth,
        max_fields=settings.max_query_fields,
        max_aliases=settings.max_query_aliases,
        max_cost=settings.max_query_cost,
    )
    graphql = TesseraGraphQL(
        build_schema(
            limits, max_tokens=settings.max_query_tokens, introspection=settings.introspection
        ),
        # GraphiQL needs introspection to show the schema.
        graphql_ide="graphiql" if settings.graphiql and settings.introspection else None,
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
        PageResponseCache(
            graphql, maxsize=settings.response_cache_size, max_tokens=settings.max_query_tokens
        )
        if settings.response_cache_size
        else None
    )
    app = Starlette(
        routes=[
            Route(
                "/graphql",
                BodyLimit(
                    VisitorMiddleware(page_cache or graphql, secure_cookie=settings.cookie_secure),
                    max_bytes=settings.max_graphql_body_bytes,
                ),
                methods=["GET", "POST"],
            ),
            Route("/v1/events", events_endpoint, methods=["POST", "OPTIONS"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint(settings.cms, page_cache)),
            Route("/webhooks/{cms}", webhook, methods=["POST"]),
        ],
        # Outermost first: nothing escapes LastResort, not even a limiter failure.
        middleware=[
            Middleware(LastResort),
            Middleware(RateLimitMiddleware, limiter=limiter),
        ],
        lifespan=lifespan,
    )
    app.state.page_cache = page_cache
    return app
