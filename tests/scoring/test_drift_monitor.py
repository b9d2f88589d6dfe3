from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from scoring.drift import DRIFT
from scoring.drift_monitor import DriftMonitor
from scoring.registry import ModelRegistry

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _monitor(mongo: AsyncMongoClient[dict[str, Any]], database_name: str) -> DriftMonitor:
    db = mongo[database_name]
    return DriftMonitor(
        db, ModelRegistry(db, b"k"), interval=3600, window=timedelta(hours=24), clock=lambda: NOW
    )


async def test_start_exports_the_last_stored_report(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    await mongo[database_name][DRIFT].insert_one({"_id": "variant", "max_statistic": 0.4321})
    monitor = _monitor(mongo, database_name)
    await monitor.start()
    try:
        assert REGISTRY.get_sample_value("tessera_model_drift_max") == 0.4321
    finally:
        await monitor.aclose()


async def test_without_an_active_model_there_is_nothing_to_report(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str, caplog: Any
) -> None:
    monitor = _monitor(mongo, database_name)
    with caplog.at_level("INFO", logger="scoring.drift_monitor"):
        assert await monitor.run_once() is None
        assert await monitor.run_once() is None
    said = [r.message for r in caplog.records if "drift not computed" in r.message]
    assert len(said) == 1
    assert "no variant model is active" in said[0]
