"""Every index Tessera needs, created idempotently at start-up."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from common import collections

EVENTS = collections.EVENTS
CONSENT_LOG = collections.CONSENT_LOG
AUDIT = collections.AUDIT
PENDING = collections.PENDING
TTL_INDEX = "events_ttl"
EXPOSURES_TTL_INDEX = "exposures_ttl"
#: Written by scoring.exposures (the name is repeated here to keep profiles free of scoring).
EXPOSURES = collections.EXPOSURES
#: The index of the per-block exposure shape (visitorId, blockId, ts), dropped at start-up.
OLD_EXPOSURES_INDEX = "exposures_visitor_block"


async def _ttl_index(
    database: AsyncDatabase[dict[str, Any]], collection: str, field: str, name: str, days: float
) -> None:
    """A TTL index on `field`, or its retention changed in place when it already exists."""
    seconds = int(days * 86400)
    try:
        await database[collection].create_index(
            [(field, ASCENDING)], name=name, expireAfterSeconds=seconds
        )
    except OperationFailure:
        # The retention changed since the index was made: change it in place.
        await database.command(
            "collMod", collection, index={"name": name, "expireAfterSeconds": seconds}
        )


async def ensure_indexes(
    database: AsyncDatabase[dict[str, Any]],
    *,
    retention_days: float,
    exposure_retention_days: float = 400.0,
) -> None:
    """Create the indexes (or change the retention of the TTL indexes) if needed."""
    events = database[EVENTS]
    await events.create_index(
        [("visitorId", ASCENDING), ("timestamp", DESCENDING)], name="events_visitor"
    )
    await events.create_index([("userId", ASCENDING)], name="events_user", sparse=True)
    await events.create_index([("commit", ASCENDING)], name="events_commit")
    await _ttl_index(database, EVENTS, "receivedAt", TTL_INDEX, retention_days)
    profiles = database[collections.PROFILES]
    await profiles.create_index([("mergedInto", ASCENDING)], name="profiles_merged", sparse=True)
    await profiles.create_index([("userId", ASCENDING)], name="profiles_user", sparse=True)
    await database[CONSENT_LOG].create_index(
        [("visitorId", ASCENDING), ("at", ASCENDING)], name="consent_visitor"
    )
    exposures = database[EXPOSURES]
    # One document per page view: a visitor's latest page views (export, erasure, joins),
    # and time windows (attribution, training, drift), which the TTL index also serves.
    await exposures.create_index(
        [("visitorId", ASCENDING), ("ts", DESCENDING)], name="exposures_visitor"
    )
    await _ttl_index(database, EXPOSURES, "ts", EXPOSURES_TTL_INDEX, exposure_retention_days)
    # An experiment's report reads its exposures, and the beacons that name it.
    await exposures.create_index(
        [("blocks.experiment", ASCENDING), ("ts", ASCENDING)],
        name="exposures_experiment",
        sparse=True,
    )
    await events.create_index(
        [("properties.experiment", ASCENDING)], name="events_experiment", sparse=True
    )
    # The per-block index of the old shape indexes nothing now but still costs every insert.
    if OLD_EXPOSURES_INDEX in await exposures.index_information():
        await exposures.drop_index(OLD_EXPOSURES_INDEX)
    # Invalidation messages matter only while they travel: an hour bounds the collection.
    await _ttl_index(database, collections.INVALIDATIONS, "at", "invalidations_ttl", 1 / 24)
