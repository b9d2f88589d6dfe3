"""Segment features, k chosen by silhouette, readable labels, nearest-centroid assignment."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from scoring.errors import NotEnoughData
from scoring.segments.model import (
    SEPARATOR,
    feature_names,
    fit_segmentation,
    labels_for,
    profile_features,
)
from tests.segments.profiles import population

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_features_read_rfm_engagement_cart_device_and_interest_shares() -> None:
    profile = {
        "traits": {
            "pageViews": 9,
            "sessions": 3,
            "orders": 2,
            "ltv": 199.0,
            "device": "mobile",
            "lastOrderAt": NOW - timedelta(days=10),
            "lastSeen": NOW - timedelta(days=1),
        },
        "cart": {"items": 1},
        "interests": {"outdoor": {"v": 6.0, "t": NOW}, "climbing": 2.0},
        "decay": {"halfLifeDays": 30.0},
    }
    names = feature_names(("outdoor", "climbing", "water"))
    row = dict(
        zip(names, profile_features(profile, NOW, ("outdoor", "climbing", "water")), strict=True)
    )
    assert row["pageViews"] == pytest.approx(math.log1p(9))
    assert row["orders"] == pytest.approx(math.log1p(2))
    assert row["ltv"] == pytest.approx(math.log1p(199))
    assert row["recencyDays"] == pytest.approx(math.log1p(10))
    assert row["idleDays"] == pytest.approx(math.log1p(1))
    assert row["cartItems"] == pytest.approx(math.log1p(1))
    assert (row["device.mobile"], row["device.desktop"], row["device.tablet"]) == (1.0, 0.0, 0.0)
    assert row["interest.outdoor"] == pytest.approx(0.75)
    assert row["interest.climbing"] == pytest.approx(0.25)
    assert row["interest.water"] == 0.0


def test_garbage_and_missing_values_read_as_a_new_visitor() -> None:
    names = feature_names(("outdoor",))
    row = profile_features(
        {
            "traits": {"pageViews": float("inf"), "orders": "many", "ltv": True},
            "cart": "full",
            "interests": {"outdoor": {"v": float("nan")}},
        },
        NOW,
        ("outdoor",),
    )
    assert len(row) == len(names)
    assert all(math.isfinite(value) for value in row)
    assert row[names.index("recencyDays")] == pytest.approx(math.log1p(365))


def test_k_is_chosen_by_silhouette_and_segments_get_readable_unique_labels() -> None:
    profiles = population(NOW)
    seg = fit_segmentation(profiles, now=NOW, k_values=range(2, 7))
    assert seg.k == 3
    assert max(seg.silhouettes, key=seg.silhouettes.__getitem__) == 3
    assert set(seg.silhouettes) == {2, 3, 4, 5, 6}
    assert sorted(seg.sizes) == [60, 60, 60]
    assert len(set(seg.labels)) == 3
    kinds = {"buyer": "mobile", "browser": "desktop", "carter": "tablet"}
    for kind, word in kinds.items():
        members = [p for p in profiles if p["_id"].startswith(kind)]
        assigned = Counter(seg.assign(p, NOW)[1] for p in members)
        label, count = assigned.most_common(1)[0]
        assert count == len(members)
        assert word in label.split(SEPARATOR), label
    buyers = seg.assign(profiles[0], NOW)[1].split(SEPARATOR)
    assert {"frequent", "high-value", "outdoor", "mobile", "engaged"} & set(buyers)
    assert len(buyers) <= 3
    # Clear clusters: the same partition whatever the k-means seed.
    assert seg.seed_stability == pytest.approx(1.0)


def test_a_fixed_k_and_too_few_profiles() -> None:
    profiles = population(NOW, per_kind=10)
    assert fit_segmentation(profiles, now=NOW, k_values=[4]).k == 4
    with pytest.raises(NotEnoughData, match="at least 20"):
        fit_segmentation(profiles[:19], now=NOW, k_values=[3])
    with pytest.raises(NotEnoughData, match="no k in"):
        fit_segmentation(profiles, now=NOW, k_values=[100])


def test_labels_stay_unique_when_centroids_say_the_same() -> None:
    names = ("orders", "device.mobile", "interest.outdoor", "ltv")
    centroids = np.array(
        [[2.0, 1.0, 1.0, 0.0], [2.0, 1.0, 1.0, 0.0], [2.0, 1.0, 1.0, 0.7], [0.0, 0.0, 0.0, 0.0]]
    )
    labels = labels_for(centroids, names)
    assert labels == [
        "frequent · mobile · outdoor",
        "frequent · mobile · outdoor #2",
        "frequent · mobile · outdoor · high-value",
        "typical",
    ]


def test_lapsed_means_a_buyer_who_stopped_not_someone_who_never_bought() -> None:
    names = ("orders", "recencyDays", "device.mobile")
    centroids = np.array([[-1.0, 1.5, 0.6], [0.8, 1.5, 0.0]])
    assert labels_for(centroids, names) == ["non-buyer · mobile", "lapsed · frequent"]
