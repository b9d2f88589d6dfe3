"""ExposureLog shutdown when MongoDB is unreachable: bounded, and what is lost is counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from common.service import ShutdownBudget
from gateway.embedded_mongo import free_port
from scoring.exposures import EXPOSURES, ExposureLog


def _closed() -> float:
    labels = {"cause": "closed"}
    return REGISTRY.get_sample_value("tessera_exposures_dropped_total", labels) or 0.0


async def test_aclose_gives_up_after_close_timeout_and_counts_the_rest(
    database_name: str,
) -> None:
    # MongoDB down: nothing listens there, so every write waits out server selection.
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        collection = client[database_name][EXPOSURES]
        log = ExposureLog(collection, batch_size=10, flush_interval=0.01, close_timeout=0.5)
        await log.start()
        closed = _closed()
        log.record({"_id": str(i)} for i in range(25))
        await asyncio.sleep(0.1)  # the first batch is now waiting on the dead server
        started = time.monotonic()
        # Without the bound, the writer waits out server selection (30 s) on each batch.
        await asyncio.wait_for(log.aclose(), 5.0)
        assert time.monotonic() - started < 3.0
        assert _closed() == closed + 25
        assert log.pending == 0
    finally:
        await client.close()


async def test_aclose_keeps_within_a_shared_shutdown_budget(database_name: str) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        budget = ShutdownBudget(1.0)
        log = ExposureLog(
            client[database_name][EXPOSURES],
            batch_size=10,
            flush_interval=0.01,
            close_timeout=budget.remaining,
        )
        await log.start()
        closed = _closed()
        log.record({"_id": str(i)} for i in range(5))
        await asyncio.sleep(0.1)
        budget.start()
        await asyncio.sleep(0.6)  # services closed before this one spent most of it
        started = time.monotonic()
        await asyncio.wait_for(log.aclose(), 5.0)
        # What was left of the budget (0.4 s), not a close_timeout of its own.
        assert time.monotonic() - started < 0.9
        assert _closed() == closed + 5
    finally:
        await client.close()
