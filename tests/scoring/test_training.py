"""Training on synthetic exposures with a known preference per audience."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from scoring.attribution import attribute_outcomes
from scoring.dataset import load_dataset
from scoring.errors import NotEnoughData
from scoring.features import candidate_rows
from scoring.registry import ModelRegistry
from scoring.synthetic import (
    BLOCK_ID,
    GROUND_TRUTH,
    make_visitors,
    oracle_value,
    policy_value,
    random_value,
    synthetic_logs,
)
from scoring.train import train_variant_model

START = datetime(2026, 11, 1, tzinfo=UTC)
KEY = b"train-test-key"


async def _seed(db: Any, exposures: int, seed: int = 1) -> None:
    visitors = make_visitors(300, seed=seed)
    logged, events = synthetic_logs(visitors, exposures, start=START, seed=seed)
    # Stored out of time order: the split must sort, not trust the collection's order.
    random.Random(seed).shuffle(logged)
    await db.exposures.insert_many(logged)
    if events:
        await db.events.insert_many(events)


async def test_training_learns_the_best_variant_per_audience(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await _seed(db, 6000)
    until = START + timedelta(days=2)
    attributed = await attribute_outcomes(db, since=START, until=until)
    assert attributed.clicked_exposures > 0
    registry = ModelRegistry(db, KEY)
    report = await train_variant_model(db, registry, since=START, until=until, activate=True)
    assert report.version is not None
    assert report.activated
    assert 0.5 < report.auc <= 1.0
    assert 0 < report.log_loss < 1
    assert sum(b.count for b in report.reliability) == report.rows_validation
    assert report.off_policy.n == report.rows_validation
    # The greedy policy beats the random logging policy on held-out data.
    assert report.off_policy.snips is not None
    assert report.off_policy.snips > report.off_policy.logged_rate
    loaded = await registry.load_active()
    assert loaded is not None
    assert loaded.version == report.version
    # Every candidate of each sampled exposure is scored (three per exposure here).
    assert 3 * len(loaded.sample["snapshots"]) == len(loaded.sample["scores"]) > 0
    assert loaded.info.metrics["auc"] == report.auc
    variants = list(next(iter(GROUND_TRUTH.values())))
    for audience, row in GROUND_TRUTH.items():
        snapshot = {"device": "desktop", "audiences": [audience], "traits.pageViews": 1.0}
        rows = candidate_rows(snapshot, [(BLOCK_ID, v, []) for v in variants])
        scores = loaded.estimator.predict_proba(rows)[:, 1]
        best = variants[int(scores.argmax())]
        assert best == max(row, key=lambda v: row[v]), (audience, scores)

    # Over whole visitors (noise features included) it captures most of the oracle's lift.
    def greedy(visitor: Any) -> str:
        rows = candidate_rows(visitor.snapshot, [(BLOCK_ID, v, []) for v in variants])
        return variants[int(loaded.estimator.predict_proba(rows)[:, 1].argmax())]

    model = policy_value(greedy, make_visitors(300, seed=1))
    assert (model - random_value()) / (oracle_value() - random_value()) >= 0.8


async def test_dataset_split_is_time_ordered(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await _seed(db, 400)
    until = START + timedelta(days=1)
    await attribute_outcomes(db, since=START, until=until)
    dataset = await load_dataset(db, since=START, until=until)
    assert len(dataset.validation) == 80
    assert len(dataset.train) == 320
    assert max(e.ts for e in dataset.train) <= min(e.ts for e in dataset.validation)
    times = [e.ts for e in dataset.all]
    assert times == sorted(times)
    assert dataset.validation[-1].ts == START + timedelta(seconds=5 * 399)


async def test_too_little_data_is_a_clear_error(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    await _seed(db, 20)
    until = START + timedelta(days=1)
    await attribute_outcomes(db, since=START, until=until)
    with pytest.raises(NotEnoughData, match="at least 50 are needed"):
        await train_variant_model(db, ModelRegistry(db, KEY), since=START, until=until)


async def test_unattributed_or_choiceless_exposures_are_not_used(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    db = mongo[database_name]
    visitors = make_visitors(10)
    logged, _ = synthetic_logs(visitors, 100, start=START)
    for doc in logged[:50]:
        block = doc["blocks"][0]
        block["candidates"] = block["candidates"][:1]
    await db.exposures.insert_many(logged)
    until = START + timedelta(days=1)
    with pytest.raises(NotEnoughData, match="0 usable"):
        await load_dataset(db, since=START, until=until)
    await attribute_outcomes(db, since=START, until=until)
    with pytest.raises(NotEnoughData, match="50 usable"):
        await load_dataset(db, since=START, until=until, min_rows=51)
