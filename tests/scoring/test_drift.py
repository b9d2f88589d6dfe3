"""Drift: KS for numeric features and the score, PSI and chi-square for categories."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.attribution import attribute_outcomes
from scoring.drift import (
    DRIFT,
    _scores,
    compute_drift,
    drift_report,
    population_stability_index,
)
from scoring.errors import ModelNotFound
from scoring.metrics import MODEL_DRIFT_MAX
from scoring.registry import ModelRegistry
from scoring.synthetic import make_visitors, synthetic_logs
from scoring.train import train_variant_model


def _snapshots(n: int, seed: int, *, shift: float = 0.0, mobile: float = 0.3) -> list[Any]:
    rng = random.Random(seed)
    return [
        {
            "device": "mobile" if rng.random() < mobile else "desktop",
            "audiences": ["a"] if rng.random() < 0.5 else [],
            "traits.pageViews": rng.gauss(2.0 + shift, 1.0),
        }
        for _ in range(n)
    ]


def _stat(report: Any, name: str) -> float:
    (item,) = [f for f in report.features if f.name == name]
    return float(item.statistic)


def test_identical_samples_show_no_drift() -> None:
    sample = _snapshots(500, 1)
    scores = [0.1 * (i % 10) for i in range(500)]
    report = compute_drift(sample, scores, sample, scores)
    assert report.max_statistic == pytest.approx(0.0, abs=1e-9)
    assert {f.name for f in report.features} == {
        "device",
        "audiences",
        "traits.pageViews",
        "(score)",
    }


def test_a_shifted_numeric_feature_is_detected_by_ks() -> None:
    report = compute_drift(_snapshots(500, 1), [], _snapshots(500, 2, shift=1.0), [])
    assert _stat(report, "traits.pageViews") > 0.3
    assert _stat(report, "device") < 0.05
    assert report.features[0].name == "traits.pageViews"
    assert report.features[0].p_value is not None
    assert report.features[0].p_value < 1e-6
    assert report.max_statistic == _stat(report, "traits.pageViews")


def test_a_shifted_category_is_detected_by_psi() -> None:
    report = compute_drift(_snapshots(500, 1), [], _snapshots(500, 2, mobile=0.8), [])
    assert _stat(report, "device") > 0.25
    (device,) = [f for f in report.features if f.name == "device"]
    assert device.p_value is not None
    assert device.p_value < 1e-6
    assert _stat(report, "traits.pageViews") < 0.15


def test_psi_by_hand() -> None:
    from collections import Counter

    psi = population_stability_index(Counter(a=50, b=50), Counter(a=80, b=20))
    # (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5), with the tiny epsilon.
    assert psi == pytest.approx(0.3 * 0.4700 + 0.3 * 0.9163, abs=1e-3)


def test_empty_and_small_samples_say_so() -> None:
    report = compute_drift(_snapshots(100, 1), [], [], [])
    assert report.max_statistic is None
    assert "no recent snapshots" in report.message
    small = compute_drift(_snapshots(100, 1), [], _snapshots(5, 2), [])
    assert small.max_statistic is None
    assert "too small" in small.message


async def test_drift_report_against_the_active_model_is_stored(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mongo[database_name]
    registry = ModelRegistry(db, b"k")
    MODEL_DRIFT_MAX.labels(test="ks").set(0.5)  # left by an earlier model's report
    with pytest.raises(ModelNotFound, match="no variant model is active"):
        await drift_report(db, registry, since=datetime(2026, 1, 1, tzinfo=UTC))
    # A report that cannot be computed leaves no stale value behind.
    assert REGISTRY.get_sample_value("tessera_model_drift_max", {"test": "ks"}) is None
    start = datetime(2026, 11, 1, tzinfo=UTC)
    logged, events = synthetic_logs(make_visitors(100), 600, start=start)
    await db.exposures.insert_many(logged)
    await db.events.insert_many(events)
    until = start + timedelta(days=1)
    await attribute_outcomes(db, since=start, until=until)
    report = await train_variant_model(db, registry, since=start, until=until, activate=True)
    # Recent traffic: everyone on mobile now, served by the model.
    later = until + timedelta(hours=1)
    recent = []
    for doc in logged[:200]:
        recent.append(
            {
                **doc,
                "_id": doc["_id"] + "-r",
                "ts": later,
                "features": {**doc["features"], "device": "mobile"},
                "modelVersion": report.version,
                "blocks": [
                    {**block, "modelVersion": report.version, "score": 0.1}
                    for block in doc["blocks"]
                ],
            }
        )
    await db.exposures.insert_many(recent)
    # Not the model's: fallback pages (the block names the model that timed out, the
    # page names none) and blocks without a choice. Both would show up as drift.
    other = {"device": "tablet", "country": "zz", "audiences": ["elsewhere"]}
    fallback = {**recent[0], "_id": "fallback", "modelVersion": None, "features": other}
    lone = {
        **recent[1],
        "_id": "lone",
        "features": other,
        "blocks": [
            {**recent[1]["blocks"][0], "candidates": recent[1]["blocks"][0]["candidates"][:1]}
        ],
    }
    await db.exposures.insert_many([{**fallback, "_id": f"fallback-{i}"} for i in range(100)])
    await db.exposures.insert_many([{**lone, "_id": f"lone-{i}"} for i in range(100)])
    threads: list[str] = []

    def compute(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return compute_drift(*args)

    monkeypatch.setattr("scoring.drift.compute_drift", compute)
    drift = await drift_report(db, registry, since=until)
    # The statistics ran off the event loop's thread.
    assert threads
    assert threading.main_thread().name not in threads
    assert drift.model_version == report.version
    assert drift.recent_n == 200
    assert all(f.name != "country" or (f.statistic or 0) < 0.25 for f in drift.features)
    assert drift.extra["scope"] == "served by the model"
    assert drift.features[0].name in {"device", "(score)"}
    assert drift.max_statistic is not None
    assert drift.max_statistic > 0.25
    stored = await db[DRIFT].find_one({"_id": "variant"})
    assert stored is not None
    assert stored["max_statistic"] == drift.max_statistic
    # One sample per test: KS (0-1) and PSI (unbounded) are not comparable.
    for test in ("ks", "psi"):
        expected = max(f.statistic or 0.0 for f in drift.features if f.test == test)
        sample = REGISTRY.get_sample_value("tessera_model_drift_max", {"test": test})
        assert sample == expected
    assert REGISTRY.get_sample_value("tessera_model_drift_max", {"test": "psi"}) == (
        drift.max_statistic
    )


def test_recent_scores_cover_every_candidate_not_only_the_one_shown() -> None:
    rows = [{"variant=b/x": 1.0}, {"variant=b/y": 1.0}] * 10
    estimator = make_pipeline(DictVectorizer(), LogisticRegression()).fit(rows, [1, 0] * 10)
    doc = {
        "blockId": "b",
        "variantId": "x",
        "score": 0.99,
        "features": {},
        "candidates": [{"variantId": "x", "tags": []}, {"variantId": "y", "tags": []}],
    }
    scores = _scores(estimator, [doc])
    # Both candidates are scored by the model; the logged score of the one shown is not used.
    assert len(scores) == 2
    assert scores[0] > 0.5 > scores[1]
