"""Attribute outcomes (clicks, conversions) to the exposures that preceded them.

A `click` event names the block and variant it was on, so it goes to the
latest exposure of that visitor, block and variant at or before the click and
within the attribution window. A conversion (`purchase`, and `add_to_cart` if
asked) names no block, so it is credited to every exposure of the visitor in
the window before it. Each exposure's `outcome` is recomputed from the events
as a whole and written only when it changed, so running attribution again
over the same range changes nothing.

Exposures are stored one document per page view (`scoring.exposures`); they
are flattened into per-block records here, and the outcomes of one page view
are written back in one update as `blocks.<index>.outcome`.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from common import collections
from scoring.exposures import EXPOSURES, block_exposures

EVENTS = collections.EVENTS
DEFAULT_WINDOW = timedelta(minutes=30)
CONVERSION_TYPES: tuple[str, ...] = ("purchase",)
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AttributionResult:
    """What one attribution run found and wrote (exposures count blocks, pages count documents)."""

    exposures: int
    clicks: int
    conversions: int
    clicked_exposures: int
    converted_exposures: int
    #: Block exposures whose outcome changed and was written.
    updated: int
    pages: int = 0
    pages_updated: int = 0


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _earliest(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None or moment < current else current


def compute_outcomes(
    exposures: Sequence[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    *,
    window: timedelta = DEFAULT_WINDOW,
    conversion_types: Sequence[str] = CONVERSION_TYPES,
) -> dict[str, dict[str, Any]]:
    """Every exposure's outcome (by exposure id), from the events that follow it."""
    clicked: dict[str, datetime | None] = {str(e["_id"]): None for e in exposures}
    converted: dict[str, datetime | None] = dict(clicked)
    # Per visitor, and per (visitor, block, variant), exposures sorted by time.
    by_visitor: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    by_arm: dict[tuple[str, str, str], list[tuple[datetime, str]]] = defaultdict(list)
    for exposure in exposures:
        moment, key = _aware(exposure["ts"]), str(exposure["_id"])
        visitor = str(exposure["visitorId"])
        by_visitor[visitor].append((moment, key))
        arm = (visitor, str(exposure.get("blockId")), str(exposure.get("variantId")))
        by_arm[arm].append((moment, key))
    for series in (*by_visitor.values(), *by_arm.values()):
        series.sort()
    for event in events:
        moment, visitor = _aware(event["timestamp"]), str(event["visitorId"])
        if event["type"] == "click":
            if not event.get("blockId") or not event.get("variantId"):
                continue
            series = by_arm.get((visitor, str(event["blockId"]), str(event["variantId"])), [])
            # The latest exposure at or before the click.
            index = bisect.bisect_right(series, (moment, "\uffff")) - 1
            if index >= 0 and moment - series[index][0] <= window:
                key = series[index][1]
                clicked[key] = _earliest(clicked[key], moment)
        elif event["type"] in conversion_types:
            series = by_visitor.get(visitor, [])
            low = bisect.bisect_left(series, (moment - window, ""))
            high = bisect.bisect_right(series, (moment, "\uffff"))
            for _, key in series[low:high]:
                converted[key] = _earliest(converted[key], moment)
    return {
        key: {
            "click": clicked[key] is not None,
            "clickAt": clicked[key],
            "conversion": converted[key] is not None,
            "conversionAt": converted[key],
        }
        for key in clicked
    }


def _same(stored: Any, outcome: Mapping[str, Any]) -> bool:
    if not isinstance(stored, Mapping):
        return False
    for name, value in outcome.items():
        old = stored.get(name)
        if isinstance(old, datetime) and isinstance(value, datetime):
            # MongoDB keeps milliseconds; compare at that precision.
            if abs((_aware(old) - value).total_seconds()) >= 0.001:
                return False
        elif old != value:
            return False
    return True


async def attribute_outcomes(
    database: AsyncDatabase[dict[str, Any]],
    *,
    since: datetime,
    until: datetime,
    window: timedelta = DEFAULT_WINDOW,
    conversion_types: Sequence[str] = CONVERSION_TYPES,
) -> AttributionResult:
    """Attribute events to the exposures logged in [since, until] and store each `outcome`."""
    # Projected array fields keep every element, so each block keeps its stored index.
    fields = ("visitorId", "ts", "blocks.blockId", "blocks.variantId", "blocks.outcome")
    # Exposures up to one window past `until` are read too, though not written: a click
    # after `until` belongs to the latest exposure before it, which may lie past `until`.
    cursor = database[EXPOSURES].find(
        {"ts": {"$gte": since, "$lte": until + window}}, dict.fromkeys(fields, 1)
    )
    read = [doc async for doc in cursor]
    pages = [doc for doc in read if _aware(doc["ts"]) <= until]
    exposures = [record for doc in pages for record in block_exposures(doc)]
    if not exposures:
        return AttributionResult(0, 0, 0, 0, 0, 0, pages=len(pages))
    later = [record for doc in read if _aware(doc["ts"]) > until for record in block_exposures(doc)]
    visitors = sorted({str(doc["visitorId"]) for doc in exposures})
    # Events up to one window after the last exposure can still count.
    query = {
        "type": {"$in": ["click", *conversion_types]},
        "timestamp": {"$gte": since, "$lte": until + window},
    }
    events: list[Mapping[str, Any]] = []
    for start in range(0, len(visitors), _BATCH):
        chunk = visitors[start : start + _BATCH]
        events.extend(
            [
                doc
                async for doc in database[EVENTS].find(
                    {**query, "visitorId": {"$in": chunk}},
                    {"type": 1, "visitorId": 1, "timestamp": 1, "blockId": 1, "variantId": 1},
                )
            ]
        )
    outcomes = compute_outcomes(
        [*exposures, *later], events, window=window, conversion_types=conversion_types
    )
    for record in later:
        del outcomes[str(record["_id"])]
    changed: dict[Any, dict[str, Any]] = defaultdict(dict)
    for record in exposures:
        outcome = outcomes[str(record["_id"])]
        if not _same(record.get("outcome"), outcome):
            # Numeric positional paths: the index is the block's place in the stored array.
            changed[record["exposureId"]][f"blocks.{record['index']}.outcome"] = outcome
    requests = [UpdateOne({"_id": page_id}, {"$set": sets}) for page_id, sets in changed.items()]
    for start in range(0, len(requests), _BATCH):
        await database[EXPOSURES].bulk_write(requests[start : start + _BATCH], ordered=False)
    return AttributionResult(
        exposures=len(exposures),
        clicks=sum(1 for e in events if e["type"] == "click"),
        conversions=sum(1 for e in events if e["type"] != "click"),
        clicked_exposures=sum(1 for o in outcomes.values() if o["click"]),
        converted_exposures=sum(1 for o in outcomes.values() if o["conversion"]),
        updated=sum(len(sets) for sets in changed.values()),
        pages=len(pages),
        pages_updated=len(requests),
    )
