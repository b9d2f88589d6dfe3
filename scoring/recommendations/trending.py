"""Trending products: what was touched most over a recent window, kept fresh in the background.

Every `refresh` seconds one aggregation over the `events` of the last
`window` (by `receivedAt`, which the TTL index serves) counts each product's
views, clicks, carts and purchases, weighted as the models weigh them. Pages
read the ranking from memory and never wait for MongoDB; while it cannot be
read the last ranking stays (and, before the first, pages fall back to the
model's popularity).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from common.service import Service, cancel
from scoring.recommendations.interactions import CART, CLICK, PURCHASE, VIEW, WEIGHTS

logger = logging.getLogger(__name__)

_KIND_OF = {"page_view": VIEW, "click": CLICK, "add_to_cart": CART, "purchase": PURCHASE}
#: Products kept in the ranking (pages ask for a handful).
MAX_TRENDING = 500


def ranking(rows: Iterable[dict[str, Any]]) -> list[tuple[str, float]]:
    """`(product, score)` best first, from `{_id: {p, t}, n}` aggregation rows."""
    scores: dict[str, float] = {}
    for row in rows:
        key = row.get("_id") or {}
        product, kind = key.get("p"), _KIND_OF.get(str(key.get("t")))
        count = row.get("n")
        if isinstance(product, str) and kind is not None and isinstance(count, (int, float)):
            scores[product] = scores.get(product, 0.0) + WEIGHTS[kind] * float(count)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return ordered[:MAX_TRENDING]


class TrendingService(Service):
    """The products trending now, refreshed from the events every `refresh` seconds."""

    def __init__(
        self,
        events: AsyncCollection[dict[str, Any]],
        *,
        window: timedelta,
        refresh: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._events = events
        self._window = window
        self._refresh = refresh
        self._clock = clock
        self._ranking: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.refreshed_at: datetime | None = None

    @property
    def ranking(self) -> tuple[str, ...]:
        """Product ids, most trending first (empty before the first successful refresh)."""
        return self._ranking

    def top(self, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """The `k` most trending products, leaving out `exclude`."""
        skip = set(exclude)
        out: list[str] = []
        for product in self._ranking:
            if product not in skip:
                out.append(product)
                if len(out) >= k:
                    break
        return out

    async def refresh(self) -> None:
        """Recount the window now (raises PyMongoError when MongoDB cannot answer)."""
        now = self._clock()
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "receivedAt": {"$gte": now - self._window},
                    "type": {"$in": list(_KIND_OF)},
                    "properties.productId": {"$type": "string"},
                }
            },
            {"$group": {"_id": {"p": "$properties.productId", "t": "$type"}, "n": {"$sum": 1}}},
        ]
        rows = await (await self._events.aggregate(pipeline)).to_list()
        self._ranking = tuple(product for product, _ in ranking(rows))
        self.refreshed_at = now

    async def start(self) -> None:
        """Count once (a failure is logged, not fatal), then keep counting in the background."""
        await self._refresh_once()
        self._task = asyncio.create_task(self._loop(), name="trending-refresh")

    async def aclose(self) -> None:
        """Stop refreshing."""
        await cancel(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self._refresh_once()

    async def _refresh_once(self) -> None:
        try:
            await self.refresh()
        except PyMongoError as exc:
            if not self._failing:
                logger.warning("trending products not refreshed, keeping the last: %s", exc)
            self._failing = True
        except Exception:  # a dead refresher would freeze trending for good
            logger.exception("trending products not refreshed")
        else:
            if self._failing:
                logger.info("trending products refreshed again")
            self._failing = False
