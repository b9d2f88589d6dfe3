"""The ASGI application: routes, and the lifespan that opens shared clients."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response

from blocks.experiments import Allocation
from blocks.rendering import BlockRenderer
from cms_adapters.base import CMSAdapter
from cms_adapters.cache_backend import close_cache, is_redis, open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.filesystem import FilesystemAdapter
from cms_adapters.invalidation import Invalidator, PurgeSink
from cms_adapters.purge import (
    CloudflarePurgeSink,
    FanOutPurgeSink,
    FastlyPurgeSink,
    VarnishPurgeSink,
)
from common.collections import INVALIDATIONS
from common.mongo_metrics import Liveness
from common.service import ShutdownBudget
from delivery.edge_keys import EdgeKeys, edge_secret_from
from delivery.experiment_registry import ExperimentRegistry, ExperimentSweep
from delivery.services import IngestLimits, Services
from gateway.body_limit import BodyLimit, plain_error
from gateway.cors import cors_policy, with_cors
from gateway.database import open_database
from gateway.embedded_supervisor import EmbeddedHealth, EmbeddedSupervisor
from gateway.events_endpoint import BEACON_CORS, events_endpoint
from gateway.graphql_endpoint import EdgeOptions, GraphQLEndpoint
from gateway.last_resort import LastResort
from gateway.learning import open_recommendations
from gateway.metrics import metrics_endpoint
from gateway.observability import telemetry_middleware
from gateway.persisted_queries import PersistedQueries, SharedQueryStore, configured_manifest
from gateway.ratelimit import RateLimiter, RateLimitMiddleware, RateLimitPolicy
from gateway.response_cache import ResponseCache
from gateway.settings import DEMO_DIR, Settings
from gateway.visitor import CookiePolicy
from gateway.webhooks import MAX_WEBHOOK_BODY, webhook
from profiles.audiences import AudienceCatalog, AudienceRepository
from profiles.indexes import ensure_indexes
from profiles.ingest import ConsentDefaults, Ingestor
from profiles.near_cache import NearCache, ProfileFeed
from profiles.reader import BudgetedProfileReader
from profiles.seed import seed_demo
from profiles.sticky import StickyBucketWriter
from profiles.store import PROFILES, ProfileStore
from resolvers.extensions.query_cost import QueryLimits
from resolvers.schema import build_schema
from scoring.drift_monitor import DriftMonitor
from scoring.exposures import EXPOSURES, ExposureLog
from scoring.registry import ModelRegistry, signing_key_from
from scoring.segments.serving import SegmentServer
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


def build_purge_sink(settings: Settings) -> PurgeSink | None:
    """The edge caches the settings name, as one sink; None when there is none."""
    options: dict[str, Any] = {"timeout": settings.purge_timeout, "retries": settings.purge_retries}
    sinks: list[PurgeSink] = []
    urls = [url.strip() for url in settings.varnish_urls.split(",") if url.strip()]
    if urls:
        sinks.append(VarnishPurgeSink(urls, **options))
    fastly_token = settings.fastly_api_token.get_secret_value()
    if settings.fastly_service_id or fastly_token:
        sinks.append(
            FastlyPurgeSink(
                settings.fastly_service_id,
                fastly_token,
                soft=settings.fastly_soft_purge,
                api_url=settings.fastly_api_url,
                **options,
            )
        )
    cloudflare_token = settings.cloudflare_api_token.get_secret_value()
    if settings.cloudflare_zone_id or cloudflare_token:
        sinks.append(
            CloudflarePurgeSink(
                settings.cloudflare_zone_id,
                cloudflare_token,
                api_url=settings.cloudflare_api_url,
                **options,
            )
        )
    if not sinks:
        return None
    return sinks[0] if len(sinks) == 1 else FanOutPurgeSink(sinks)


def create_app(
    settings: Settings | None = None,
    *,
    adapter: CMSAdapter | None = None,
    clock: Callable[[], datetime] = utc_now,
    purge_sink: PurgeSink | None = None,
    embedded: EmbeddedHealth | None = None,
) -> Starlette:
    """Build the gateway; shared clients open in its lifespan.

    `embedded` reports on the embedded database `serve` runs for this app
    (`/healthz` shows its state). Without it and without `MONGODB_URI`, the
    lifespan runs and supervises an embedded server of its own.
    """
    settings = settings or Settings()
    # Shares Redis with the content cache when CACHE_URL names one, so replicas share budgets.
    limiter = RateLimiter(
        RateLimitPolicy.from_settings(settings),
        redis_url=settings.cache_url if is_redis(settings.cache_url) else None,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Queued events, exposures and sticky buckets: flushed within it, one after another.
        shutdown = ShutdownBudget(settings.flush_seconds)
        async with AsyncExitStack() as stack:
            # Entered in order, closed in reverse: the database closes last, after every
            # service has flushed what it holds (events, exposures).
            health, db_settings = embedded, settings
            if settings.mongodb_uri is None:
                supervisor = await stack.enter_async_context(
                    EmbeddedSupervisor(
                        settings.state_dir / "mongo", hang_after=settings.embedded_db_hang_seconds
                    )
                )
                health = supervisor
                db_settings = settings.model_copy(update={"mongodb_uri": SecretStr(supervisor.uri)})
            liveness = Liveness()
            database = await stack.enter_async_context(
                open_database(db_settings, app=True, liveness=liveness)
            )
            client = database.client
            store = ProfileStore(database)
            repository = AudienceRepository(database)
            if settings.seed_demo:
                try:
                    await seed_demo(
                        store, repository, DEMO_DIR / "audiences.yaml", DEMO_DIR / "profiles.yaml"
                    )
                except PyMongoError as exc:
                    logger.warning("demo data not seeded, MongoDB unavailable: %s", exc)
            audiences = await stack.enter_async_context(
                AudienceCatalog(repository, refresh_seconds=settings.audience_refresh_seconds)
            )
            try:
                await ensure_indexes(
                    database,
                    retention_days=settings.event_retention_days,
                    exposure_retention_days=settings.exposure_retention_days,
                )
            except PyMongoError as exc:
                logger.warning("indexes not ensured, MongoDB unavailable: %s", exc)
            registry = ModelRegistry(
                database,
                signing_key_from(settings.model_signing_key.get_secret_value(), settings.state_dir),
            )
            # Before ingestion: new and changed profiles get their segment as they are written.
            segments = await stack.enter_async_context(
                SegmentServer(registry, poll_seconds=settings.model_poll_seconds)
            )
            near_cache = NearCache(max_bytes=int(settings.profile_cache_mb * 1024 * 1024))
            # Before ingestion starts, so no write is missed by the near-cache.
            feed = await stack.enter_async_context(ProfileFeed(database[PROFILES], near_cache))
            ingestor = await stack.enter_async_context(
                Ingestor(
                    database,
                    clock=clock,
                    half_life_days=settings.interest_half_life_days,
                    consent=ConsentDefaults(
                        analytics=settings.default_analytics_consent,
                        personalization=settings.default_personalization_consent,
                    ),
                    window=settings.event_commit_window_ms / 1000.0,
                    on_profile=near_cache.update,
                    close_timeout=shutdown.remaining,
                    annotate=segments.annotate,
                    answered=lambda: liveness.answered,
                )
            )
            await stack.enter_async_context(limiter)
            cms = await stack.enter_async_context(adapter or build_adapter(settings))
            cache = open_cache(settings.cache_url)
            stack.push_async_callback(close_cache, cache)
            content = await stack.enter_async_context(
                ContentCache(
                    cms,
                    cache,
                    ttl=settings.content_ttl,
                    stale_while_revalidate=settings.content_stale_while_revalidate,
                    stale_if_error=settings.content_stale_if_error,
                    not_found_ttl=settings.content_not_found_ttl,
                )
            )
            experiments = ExperimentRegistry()
            if settings.experiment_sweep_seconds:
                await stack.enter_async_context(
                    ExperimentSweep(
                        experiments, cms, content, interval=settings.experiment_sweep_seconds
                    )
                )
            redis_url = settings.cache_url if is_redis(settings.cache_url) else None
            sink = purge_sink
            if sink is None:
                sink = build_purge_sink(settings)
                if sink is not None:
                    # Entered before the invalidator: closed after its last purge ran.
                    sink = await stack.enter_async_context(sink)
            invalidator = await stack.enter_async_context(
                Invalidator(
                    content,
                    sink,
                    redis_url=redis_url,
                    purge_deadline=settings.purge_deadline,
                    collection=database[INVALIDATIONS],
                )
            )
            scorer = await stack.enter_async_context(
                ModelServer(
                    registry,
                    budget=settings.scoring_budget,
                    poll_seconds=settings.model_poll_seconds,
                )
            )
            recommendations = await open_recommendations(
                stack,
                registry=registry,
                database=database,
                adapter=cms,
                settings=settings,
                clock=clock,
            )
            reader = BudgetedProfileReader(
                store,
                budget=settings.profile_budget,
                near_cache=near_cache,
                feed=feed,
                max_concurrent=settings.profile_read_concurrency,
            )
            exposures = await stack.enter_async_context(
                ExposureLog(
                    database[EXPOSURES],
                    max_queue=settings.exposure_queue_size,
                    batch_size=settings.exposure_batch_size,
                    # Exposures wait while pages' profile reads or event commits are slow.
                    defer_while=lambda: reader.under_pressure() or ingestor.behind(),
                    close_timeout=shutdown.remaining,
                )
            )
            sticky = await stack.enter_async_context(
                StickyBucketWriter(
                    store.collection,
                    clock=clock,
                    consent={
                        "analytics": settings.default_analytics_consent,
                        "personalization": settings.default_personalization_consent,
                    },
                    max_queue=settings.sticky_bucket_queue_size,
                    close_timeout=shutdown.remaining,
                )
            )
            if settings.drift_interval_seconds:
                await stack.enter_async_context(
                    DriftMonitor(
                        database,
                        registry,
                        interval=settings.drift_interval_seconds,
                        window=timedelta(hours=settings.drift_window_hours),
                        clock=clock,
                        # The model this gateway already loaded and verified: no second download.
                        current=lambda: scorer.model,
                    )
                )
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
                edge_keys=EdgeKeys(edge_secret),
                allocation=Allocation(holdout=settings.experiments_holdout),
                sticky=sticky,
                experiments=experiments,
                segments=segments,
                recommendations=recommendations,
            )
            persisted = None
            if settings.persisted_queries != "off":
                persisted = PersistedQueries(
                    settings.persisted_queries,
                    SharedQueryStore(cache) if is_redis(settings.cache_url) else None,
                    manifest,
                )
            app.state.services = services
            app.state.mongo = client
            app.state.invalidator = invalidator
            # Closed first: from here on the flushing services share one time budget.
            stack.callback(shutdown.start)
            yield {
                "services": services,
                "mongo": client,
                "invalidator": invalidator,
                "persisted_queries": persisted,
                "cookies": cookies,
                "embedded": health,
            }

    cors = cors_policy(settings.cors_origins)
    cookies = CookiePolicy(secure=settings.cookie_secure, same_site=settings.cookie_same_site)
    edge_secret = edge_secret_from(settings.edge_key_secret.get_secret_value(), settings.state_dir)
    limits = QueryLimits(
        max_depth=settings.max_query_depth,
        max_fields=settings.max_query_fields,
        max_aliases=settings.max_query_aliases,
        max_cost=settings.max_query_cost,
    )
    # Read before serving: a bad manifest stops the gateway with the setting's name.
    manifest = configured_manifest(settings.persisted_queries, settings.persisted_queries_manifest)
    response_cache = (
        ResponseCache(maxsize=settings.response_cache_size)
        if settings.response_cache_size
        else None
    )
    graphql = GraphQLEndpoint(
        build_schema(
            limits, max_tokens=settings.max_query_tokens, introspection=settings.introspection
        ),
        # GraphiQL needs introspection to show the schema.
        graphiql=settings.graphiql and settings.introspection,
        cookies=cookies,
        edge=EdgeOptions(
            s_maxage=settings.page_smaxage,
            stale_while_revalidate=settings.page_stale_while_revalidate,
            stale_if_error=settings.page_stale_if_error,
        ),
        max_tokens=settings.max_query_tokens,
        response_cache=response_cache,
        operation_names=settings.metrics_operation_names,
    )

    async def healthz(request: Request) -> Response:
        # Answering at all says the process and its event loop work; with an embedded
        # database, its supervision state too (liveness: a failed one needs a restart).
        health: EmbeddedHealth | None = getattr(request.state, "embedded", None)
        if health is None:
            return JSONResponse({"status": "ok"})
        status = health.status()
        if not status.healthy:
            return JSONResponse(
                {"status": "failing", "embeddedDatabase": status.as_json()}, status_code=503
            )
        return JSONResponse({"status": "ok", "embeddedDatabase": status.as_json()})

    async def readyz(request: Request) -> Response:
        client: AsyncMongoClient[dict[str, Any]] = request.state.mongo
        try:
            await asyncio.wait_for(client.admin.command("ping"), timeout=1.0)
        except (TimeoutError, PyMongoError):
            return JSONResponse({"status": "degraded", "mongodb": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready", "mongodb": "ok"})

    app = Starlette(
        routes=[
            Route(
                "/graphql",
                with_cors(BodyLimit(graphql, max_bytes=settings.max_graphql_body_bytes), cors),
                methods=["GET", "HEAD", "POST", "OPTIONS"],
            ),
            Route(
                "/v1/events",
                with_cors(
                    BodyLimit(
                        request_response(events_endpoint),
                        max_bytes=settings.max_event_body_bytes,
                        error_body=plain_error,
                        headers=BEACON_CORS,
                    ),
                    cors,
                ),
                methods=["POST", "OPTIONS"],
            ),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint(settings.cms, response_cache)),
            Route(
                "/webhooks/{cms}",
                BodyLimit(
                    request_response(webhook), max_bytes=MAX_WEBHOOK_BODY, error_body=plain_error
                ),
                methods=["POST"],
            ),
        ],
        # Outermost first: request ids and timings see everything; nothing escapes
        # LastResort, not even a limiter failure.
        middleware=[
            *telemetry_middleware(settings),
            Middleware(LastResort),
            Middleware(RateLimitMiddleware, limiter=limiter),
        ],
        lifespan=lifespan,
    )
    app.state.response_cache = response_cache
    return app
