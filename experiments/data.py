"""An experiment's report from MongoDB and the content: the I/O around the pure analysis.

The definition comes from the CMS (the page whose block defines the key);
exposures from the exposure log (`exposures`, page documents whose blocks
name the experiment) and `block_view` beacons in `events`; outcomes from the
exposed visitors' events. Reads are bounded: events are fetched for the
exposed visitors only, in batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from blocks.experiments import Experiment
from cms_adapters.base import CMSAdapter
from cms_adapters.errors import CMSError
from experiments.analysis import ExperimentInfo, ExposureCounts, Report, analyze
from experiments.errors import ExperimentNotFound
from experiments.metrics import (
    PRE_DAYS,
    beacon_exposures,
    log_exposures,
    reduce_exposures,
    unit_rows,
)

EXPOSURES = "exposures"
EVENTS = "events"
#: Visitors per `$in` query for their events.
BATCH = 1000
#: Event types any metric reads.
METRIC_EVENTS = ["purchase", "click", "custom"]

Database = AsyncDatabase[dict[str, Any]]


async def find_definition(adapter: CMSAdapter, key: str) -> Experiment | None:
    """The experiment `key` as the published content defines it, if any page does."""
    for slug in await adapter.list_pages():
        try:
            parsed = await adapter.fetch_page(slug)
        except CMSError:
            continue  # the linter reports unreadable pages
        experiment = parsed.page.experiment(key)
        if experiment is not None:
            return experiment
    return None


def info_from(experiment: Experiment) -> ExperimentInfo:
    """What the analysis needs from a definition."""
    return ExperimentInfo(
        key=experiment.key,
        variation_keys=experiment.variation_keys,
        weights=tuple(experiment.effective_weights()),
        metrics=experiment.metrics,
        plan=experiment.plan,
        name=experiment.name,
        status=experiment.status,
        blocks=frozenset(experiment.block_ids),
    )


def _info_from_log(key: str, documents: Sequence[Mapping[str, Any]]) -> ExperimentInfo | None:
    keys: dict[int, str] = {}
    blocks: set[str] = set()
    for doc in documents:
        for block in doc.get("blocks") or ():
            if isinstance(block, Mapping) and block.get("experiment") == key:
                variation = block.get("variation")
                if isinstance(variation, int) and 0 <= variation < 64:
                    keys.setdefault(variation, str(block.get("bucket") or variation))
                blocks.add(str(block.get("blockId")))
    if not keys:
        return None
    count = max(keys) + 1
    return ExperimentInfo(
        key=key,
        variation_keys=tuple(keys.get(i, str(i)) for i in range(count)),
        weights=tuple(1 / count for _ in range(count)),
        metrics=("conversion", "clickThrough", "revenue"),
        status="unknown",
        blocks=frozenset(blocks),
        source="exposures",
    )


async def experiment_report(
    database: Database,
    adapter: CMSAdapter | None,
    key: str,
    *,
    now: datetime,
    alpha: float | None = None,
    sequential: bool = False,
    planned_users: int | None = None,
) -> Report:
    """Read everything about experiment `key` and analyse it."""
    experiment = await find_definition(adapter, key) if adapter is not None else None
    documents = await (
        database[EXPOSURES]
        .find({"blocks.experiment": key}, {"visitorId": 1, "ts": 1, "blocks": 1})
        .to_list()
    )
    info = info_from(experiment) if experiment is not None else _info_from_log(key, documents)
    beacons = await (
        database[EVENTS].find({"type": "block_view", "properties.experiment": key}).to_list()
    )
    if info is None:
        if not beacons:
            raise ExperimentNotFound(
                f"no experiment {key!r}: no page defines it and no exposure names it"
            )
        info = ExperimentInfo(
            key=key,
            variation_keys=("0", "1"),
            weights=(0.5, 0.5),
            metrics=("conversion", "clickThrough", "revenue"),
            status="unknown",
            source="exposures",
        )
    exposures = log_exposures(documents, key) + beacon_exposures(
        beacons, key, num_variations=len(info.variation_keys)
    )
    reduced = reduce_exposures(exposures)
    visitors = sorted({visitor for unit in reduced.units for visitor in unit.visitors})
    first = min((unit.first for unit in reduced.units), default=now)
    events: list[dict[str, Any]] = []
    for start in range(0, len(visitors), BATCH):
        batch = visitors[start : start + BATCH]
        cursor = database[EVENTS].find(
            {
                "visitorId": {"$in": batch},
                "type": {"$in": METRIC_EVENTS},
                "timestamp": {"$gte": first - timedelta(days=PRE_DAYS)},
            },
            {"type": 1, "visitorId": 1, "timestamp": 1, "blockId": 1, "properties": 1},
        )
        events.extend(await cursor.to_list())
    rows = unit_rows(reduced.units, events, info.metrics, info.blocks)
    return analyze(
        info,
        rows,
        now=now,
        exposures=ExposureCounts(
            reduced.daily_exposures, reduced.beacon_only, reduced.multiple_variations
        ),
        alpha=alpha,
        sequential=sequential,
        planned_users=planned_users,
    )
