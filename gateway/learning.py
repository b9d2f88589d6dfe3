"""The services behind segments and recommendations, opened in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from cms_adapters.base import CMSAdapter
from cms_adapters.catalog_cache import CatalogCache
from common import collections
from delivery.recommendations import Recommendations
from gateway.settings import Settings
from scoring.recommendations.serving import RecommendationServer
from scoring.recommendations.trending import TrendingService
from scoring.registry import ModelRegistry


async def open_recommendations(
    stack: AsyncExitStack,
    *,
    registry: ModelRegistry,
    database: AsyncDatabase[dict[str, Any]],
    adapter: CMSAdapter,
    settings: Settings,
    clock: Callable[[], datetime],
) -> Recommendations:
    """Enter the recommendation model server, the catalogue and trending on `stack`."""
    server = await stack.enter_async_context(
        RecommendationServer(
            registry, budget=settings.scoring_budget, poll_seconds=settings.model_poll_seconds
        )
    )
    catalog = await stack.enter_async_context(
        CatalogCache(adapter, refresh=settings.catalog_refresh_seconds)
    )
    trending = await stack.enter_async_context(
        TrendingService(
            database[collections.EVENTS],
            window=timedelta(hours=settings.trending_hours),
            refresh=settings.trending_refresh_seconds,
            clock=clock,
        )
    )
    return Recommendations(server=server, catalog=catalog, trending=trending)
