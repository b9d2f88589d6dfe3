import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from scoring.drift import DRIFT
from scoring.drift_monitor import DriftMonitor
from scoring.metrics import MODEL_DRIFT_MAX
from scoring.registry import LoadedModel, ModelRegistry
from tests.scoring.models import SNAPSHOTS, fitted

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
Mongo = AsyncMongoClient[dict[str, Any]]


def _monitor(
    mongo: Mongo, database_name: str, registry: ModelRegistry | None = None, **kwargs: Any
) -> DriftMonitor:
    db = mongo[database_name]
    return DriftMonitor(
        db,
        registry or ModelRegistry(db, b"k"),
        interval=kwargs.pop("interval", 3600),
        window=timedelta(hours=24),
        clock=lambda: NOW,
        **kwargs,
    )


def _gauge(test: str) -> float | None:
    return REGISTRY.get_sample_value("tessera_model_drift_max", {"test": test})


async def _active(registry: ModelRegistry, *, sample: bool = True) -> str:
    info = await registry.save(
        fitted("story"),
        kind="variant",
        metrics={},
        features=[],
        window={},
        sample={"snapshots": SNAPSHOTS * 10, "scores": [0.5] * 40} if sample else None,
    )
    await registry.activate(info.version)
    return info.version


def _stored(version: str) -> dict[str, Any]:
    features = [
        {"name": "device", "test": "psi", "statistic": 0.4321, "p_value": 0.01},
        {"name": "traits.pageViews", "test": "ks", "statistic": 0.12, "p_value": 0.2},
        {"name": "country", "test": "psi", "statistic": None, "p_value": None},
    ]
    return {
        "_id": "variant",
        "model_version": version,
        "max_statistic": 0.4321,
        "features": [{**f, "reference_n": 40, "recent_n": 40, "note": ""} for f in features],
    }


async def test_start_exports_the_last_stored_report_per_test(
    mongo: Mongo, database_name: str
) -> None:
    registry = ModelRegistry(mongo[database_name], b"k")
    version = await _active(registry)
    await mongo[database_name][DRIFT].insert_one(_stored(version))
    monitor = _monitor(mongo, database_name, registry)
    await monitor.start()
    try:
        assert (_gauge("psi"), _gauge("ks")) == (0.4321, 0.12)
    finally:
        await monitor.aclose()


async def test_a_stored_report_of_another_model_is_not_exported(
    mongo: Mongo, database_name: str
) -> None:
    registry = ModelRegistry(mongo[database_name], b"k")
    await _active(registry)
    await mongo[database_name][DRIFT].insert_one(_stored("variant-older"))
    MODEL_DRIFT_MAX.clear()
    monitor = _monitor(mongo, database_name, registry)
    await monitor.start()
    try:
        assert (_gauge("psi"), _gauge("ks")) == (None, None)
    finally:
        await monitor.aclose()


async def test_samples_are_removed_once_another_model_is_activated(
    mongo: Mongo, database_name: str
) -> None:
    registry = ModelRegistry(mongo[database_name], b"k")
    version = await _active(registry)
    await mongo[database_name][DRIFT].insert_one(_stored(version))
    monitor = _monitor(mongo, database_name, registry, interval=3600, check_seconds=0.02)
    await monitor.start()
    try:
        assert _gauge("psi") == 0.4321
        await _active(registry)
        deadline = asyncio.get_running_loop().time() + 5
        while _gauge("psi") is not None:
            assert asyncio.get_running_loop().time() < deadline, "stale drift sample kept"
            await asyncio.sleep(0.02)
        assert _gauge("ks") is None
    finally:
        await monitor.aclose()


async def test_without_an_active_model_there_is_nothing_to_report(
    mongo: Mongo, database_name: str, caplog: Any
) -> None:
    MODEL_DRIFT_MAX.labels(test="psi").set(0.9)
    monitor = _monitor(mongo, database_name)
    with caplog.at_level("INFO", logger="scoring.drift_monitor"):
        assert await monitor.run_once() is None
        assert await monitor.run_once() is None
    said = [r.message for r in caplog.records if "drift not computed" in r.message]
    assert len(said) == 1
    assert "no variant model is active" in said[0]
    assert _gauge("psi") is None


async def test_a_model_without_a_sample_clears_the_samples(
    mongo: Mongo, database_name: str
) -> None:
    registry = ModelRegistry(mongo[database_name], b"k")
    await _active(registry, sample=False)
    MODEL_DRIFT_MAX.labels(test="ks").set(0.3)
    assert await _monitor(mongo, database_name, registry).run_once() is None
    assert _gauge("ks") is None


class CountingRegistry(ModelRegistry):
    """A real registry that counts artifact loads."""

    loads = 0

    async def load(self, version: str) -> LoadedModel:
        self.loads += 1
        return await super().load(version)


async def test_the_servers_model_is_reused_when_it_is_the_active_one(
    mongo: Mongo, database_name: str
) -> None:
    registry = CountingRegistry(mongo[database_name], b"k")
    version = await _active(registry)
    loaded = await registry.load(version)
    registry.loads = 0
    held: list[LoadedModel | None] = [loaded]
    monitor = _monitor(mongo, database_name, registry, current=lambda: held[0])
    await monitor.run_once()
    assert registry.loads == 0
    # Another version active (the server has not swapped yet): loaded from the registry.
    await _active(registry)
    registry.loads = 0
    await monitor.run_once()
    assert registry.loads == 1
    held[0] = None
    await monitor.run_once()
    assert registry.loads == 2
    stored = await mongo[database_name][DRIFT].find_one({"_id": "variant"})
    assert stored is not None
    assert stored["model_version"] != version


class FailingRegistry(ModelRegistry):
    """A real registry whose `active_version` raises an unexpected error, as a bug would."""

    calls = 0

    async def active_version(self, kind: str = "variant") -> str | None:
        self.calls += 1
        raise RuntimeError("unexpected")


async def test_an_unexpected_error_is_logged_once_and_the_loop_goes_on(
    mongo: Mongo, database_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = FailingRegistry(mongo[database_name], b"k")
    monitor = _monitor(mongo, database_name, registry, interval=0.01)
    with caplog.at_level("INFO", logger="scoring.drift_monitor"):
        assert await monitor.run_once() is None
        await monitor.start()  # start-up survives it too
        try:
            deadline = asyncio.get_running_loop().time() + 5
            while registry.calls < 10:
                assert asyncio.get_running_loop().time() < deadline, "the monitor stopped"
                await asyncio.sleep(0.01)
        finally:
            await monitor.aclose()
    said = [r for r in caplog.records if "RuntimeError: unexpected" in r.getMessage()]
    assert len(said) == 1
    assert said[0].exc_info is not None
