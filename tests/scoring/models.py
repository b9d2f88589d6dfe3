"""Estimators the serving tests store in the registry (module level, so they unpickle)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.features import candidate_rows

BLOCK = "deals-hero"
TAGS = {"sale": ["discount"], "story": ["brand"]}
SNAPSHOTS: list[dict[str, Any]] = [
    {"device": device, "country": "unknown", "known": known, "audiences": []}
    for device in ("desktop", "mobile")
    for known in ("yes", "no")
]


def fitted(preferred: str) -> Any:
    """A DictVectorizer + LogisticRegression over `candidate_rows` that prefers `preferred`."""
    rows: list[dict[str, float]] = []
    labels: list[int] = []
    for snapshot in SNAPSHOTS * 5:
        candidates = [(BLOCK, variant, tags) for variant, tags in TAGS.items()]
        rows.extend(candidate_rows(snapshot, candidates))
        labels.extend(int(variant == preferred) for variant in TAGS)
    return make_pipeline(DictVectorizer(), LogisticRegression()).fit(rows, labels)


class SlowModel:
    """A model that takes two seconds per call: scoring must not wait for it."""

    def predict_proba(self, rows: Sequence[object]) -> Any:
        time.sleep(2.0)
        return np.full((len(rows), 2), 0.5)


class BrokenModel:
    """A model that raises: the page falls back to priority order."""

    def predict_proba(self, rows: Sequence[object]) -> Any:
        raise ValueError("broken on purpose")
