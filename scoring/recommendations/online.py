"""Online evaluation: what the recommendations served earned, from exposures and clicks.

Every page view with a recommendations block logs, in its exposure, the
block's strategy, source (the model or the fallback), model version and the
products shown. A frontend reports a click on one of them as a `click` event
naming the block (`blockId`, `variantId`) and the product
(`properties.productId`). A click counts for the latest exposure of the same
visitor and block at or before it, within `window`, when that exposure showed
the product. The report gives impressions (blocks shown), clicks and the
click-through rate per block, strategy and source: the online counterpart of
`recommendations evaluate`, and what an experiment between two strategies
(two variants of the block) compares.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common import collections

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class OnlineRow:
    """One block, strategy and source."""

    block: str
    strategy: str
    source: str
    impressions: int
    products_shown: int
    clicks: int

    @property
    def ctr(self) -> float:
        """Clicks per impression."""
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True, slots=True)
class OnlineReport:
    """Every block's row over the window."""

    since: datetime
    rows: list[OnlineRow]

    def format(self) -> str:
        """A table for people."""
        lines = [
            f"recommendations served since {self.since:%Y-%m-%d %H:%M} UTC",
            f"{'block':24} {'strategy':26} {'source':20} {'shown':>7} {'clicks':>7} {'ctr':>7}",
        ]
        if not self.rows:
            lines.append("(no recommendations block served in the window)")
        for r in self.rows:
            lines.append(
                f"{r.block[:24]:24} {r.strategy[:26]:26} {r.source[:20]:20} {r.impressions:>7} "
                f"{r.clicks:>7} {r.ctr:7.2%}"
            )
        return "\n".join(lines)


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def online_report(
    database: AsyncDatabase[dict[str, Any]],
    *,
    since: datetime,
    window: timedelta = timedelta(minutes=30),
) -> OnlineReport:
    """Impressions, clicks and CTR of the recommendations served since `since`."""
    shown: dict[tuple[str, str], list[tuple[datetime, Key, frozenset[str]]]] = defaultdict(list)
    impressions: dict[Key, int] = defaultdict(int)
    products: dict[Key, int] = defaultdict(int)
    query = {"ts": {"$gte": since}, "blocks.recommendations": {"$exists": True}}
    async for doc in database[collections.EXPOSURES].find(
        query, {"visitorId": 1, "ts": 1, "blocks": 1}
    ):
        at = _aware(doc.get("ts"))
        if at is None:
            continue
        for block in doc.get("blocks") or ():
            info = block.get("recommendations")
            if not isinstance(info, dict):
                continue
            key = (str(block.get("blockId")), str(info.get("strategy")), str(info.get("source")))
            items = frozenset(str(i) for i in info.get("items") or ())
            impressions[key] += 1
            products[key] += len(items)
            shown[(str(doc.get("visitorId")), key[0])].append((at, key, items))
    for entries in shown.values():
        entries.sort(key=lambda entry: entry[0])
    clicks: dict[Key, int] = defaultdict(int)
    events = {
        "type": "click",
        "timestamp": {"$gte": since},
        "blockId": {"$exists": True},
        "properties.productId": {"$type": "string"},
    }
    async for event in database[collections.EVENTS].find(
        events, {"visitorId": 1, "blockId": 1, "timestamp": 1, "properties.productId": 1}
    ):
        at = _aware(event.get("timestamp"))
        seen = shown.get((str(event.get("visitorId")), str(event.get("blockId"))))
        if at is None or not seen:
            continue
        position = bisect.bisect_right([entry[0] for entry in seen], at) - 1
        if position < 0:
            continue
        moment, key, items = seen[position]
        if at - moment <= window and event["properties"]["productId"] in items:
            clicks[key] += 1
    rows = [
        OnlineRow(key[0], key[1], key[2], impressions[key], products[key], clicks.get(key, 0))
        for key in sorted(impressions)
    ]
    return OnlineReport(since=since, rows=rows)
