"""A visitor-level purchase-propensity model, trained from profiles.

The label is whether the visitor has ever ordered. The features are the
behaviour that does not give the label away: views, sessions, clicks,
searches, cart activity, interests and device. Order counts, lifetime value,
order recency and anything a purchase resets are left out, or the model would
only learn to recognise buyers by their receipts. Scores are written into
every profile as `scores.purchasePropensity`, which targeting reads, so an
audience can be `{"scores.purchasePropensity": {"$gte": 0.7}}`.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from common import collections
from scoring.errors import NotEnoughData
from scoring.evaluation import ReliabilityBin, expected_calibration_error, reliability_table
from scoring.registry import PROPENSITY_MODEL, ModelRegistry

PROFILES = collections.PROFILES
SCORE_FIELD = "scores.purchasePropensity"
MIN_PROFILES = 40
MIN_PER_CLASS = 10
_BATCH = 1000
#: Counts of behaviour that precede a purchase (never `purchase` itself).
_COUNTS = ("page_view", "click", "add_to_cart", "remove_from_cart", "search", "block_view")
_TRAITS = ("pageViews", "sessions", "clicks", "searches", "blockViews")
_MAX_INTERESTS = 10


def _finite(value: Any) -> float | None:
    # inf and NaN (which MongoDB stores happily) would make the fit raise.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: Any) -> float:
    number = _finite(value)
    return 0.0 if number is None else round(math.log1p(max(number, 0.0)), 4)


def _interest(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("v")
    return _finite(value)


def profile_features(profile: Mapping[str, Any]) -> dict[str, float]:
    """The non-leaking behavioural features of one profile."""
    traits = profile.get("traits") or {}
    counts = profile.get("counts") or {}
    cart = profile.get("cart") or {}
    row: dict[str, float] = {}
    for name in _TRAITS:
        row[f"traits.{name}"] = _count(traits.get(name))
    for name in _COUNTS:
        row[f"counts.{name}"] = _count(counts.get(name))
    # The cart is emptied by a purchase, so only its current contents are used, not its history.
    row["cart.items"] = _count(cart.get("items"))
    row["cart.value"] = _count(cart.get("value"))
    row[f"device={traits.get('device') or 'unknown'}"] = 1.0
    interests = profile.get("interests") or {}
    if isinstance(interests, Mapping):
        scored = [(str(k), _interest(v)) for k, v in interests.items()]
        ranked = sorted(((k, v) for k, v in scored if v is not None), key=lambda kv: -kv[1])
        for name, value in ranked[:_MAX_INTERESTS]:
            row[f"interest.{name}"] = round(math.log1p(max(value, 0.0)), 4)
    return row


def purchased(profile: Mapping[str, Any]) -> bool:
    """The label: the visitor has ordered at least once."""
    traits = profile.get("traits") or {}
    counts = profile.get("counts") or {}
    orders = traits.get("orders") or counts.get("purchase") or 0
    return isinstance(orders, (int, float)) and orders > 0


@dataclass(slots=True)
class PropensityReport:
    """What training the propensity model measured, and what it wrote."""

    profiles: int
    buyers: int
    auc: float
    log_loss: float
    ece: float
    reliability: list[ReliabilityBin]
    features: list[str]
    version: str | None = None
    activated: bool = False
    scored: int = 0
    distribution: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The metrics stored with the model."""
        return {
            "profiles": self.profiles,
            "buyers": self.buyers,
            "auc": self.auc,
            "logLoss": self.log_loss,
            "ece": self.ece,
            "reliability": [asdict(b) for b in self.reliability],
        }

    def format(self) -> str:
        """A human-readable summary."""
        return "\n".join(
            [
                f"propensity model {self.version}{' (active)' if self.activated else ''}",
                f"  {self.profiles} profiles, {self.buyers} buyers",
                f"  holdout: AUC {self.auc:.4f}, log loss {self.log_loss:.4f}, ECE {self.ece:.4f}",
                f"  wrote {SCORE_FIELD} into {self.scored} profiles",
                "  scores: "
                + ", ".join(f"{band} {count}" for band, count in self.distribution.items()),
            ]
        )


def _pipeline(labels: Sequence[int]) -> CalibratedClassifierCV:
    minority = min(sum(labels), len(labels) - sum(labels))
    base = Pipeline(
        [("vectorize", DictVectorizer()), ("model", LogisticRegression(C=1.0, max_iter=5000))]
    )
    method = "isotonic" if len(labels) >= 2000 and minority >= 200 else "sigmoid"
    return CalibratedClassifierCV(base, method=method, cv=min(3, minority))


def fit_propensity(
    rows: Sequence[dict[str, float]], labels: Sequence[int], *, seed: int = 0
) -> tuple[Any, PropensityReport]:
    """Evaluate on a stratified 20% holdout, then refit on every profile."""
    buyers = sum(labels)
    if len(labels) < MIN_PROFILES or min(buyers, len(labels) - buyers) < MIN_PER_CLASS:
        raise NotEnoughData(
            f"{len(labels)} profiles with {buyers} buyers: the propensity model needs at least "
            f"{MIN_PROFILES} profiles and {MIN_PER_CLASS} buyers and non-buyers"
        )
    rng = random.Random(seed)
    holdout: set[int] = set()
    for label in (0, 1):
        members = [i for i, y in enumerate(labels) if y == label]
        holdout.update(rng.sample(members, max(2, len(members) // 5)))
    train = [i for i in range(len(labels)) if i not in holdout]
    test = sorted(holdout)
    model = _pipeline([labels[i] for i in train]).fit(
        [rows[i] for i in train], [labels[i] for i in train]
    )
    predicted = np.asarray(model.predict_proba([rows[i] for i in test])[:, 1], dtype=float)
    truth = [labels[i] for i in test]
    table = reliability_table(predicted.tolist(), truth)
    final = _pipeline(labels).fit(list(rows), list(labels))
    names = sorted({name for row in rows for name in row})
    report = PropensityReport(
        profiles=len(labels),
        buyers=buyers,
        auc=round(float(roc_auc_score(truth, predicted)), 5),
        log_loss=round(float(log_loss(truth, predicted, labels=[0, 1])), 5),
        ece=expected_calibration_error(table),
        reliability=table,
        features=names,
    )
    return final, report


def _live(query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    # Merge stubs are not visitors: their data lives in the profile they merged into.
    return {**(query or {}), "mergedInto": {"$exists": False}}


async def train_propensity_model(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    *,
    activate: bool = False,
    now: datetime | None = None,
) -> tuple[Any, PropensityReport]:
    """Fit on every profile and register the model (kind `propensity`)."""
    rows: list[dict[str, float]] = []
    labels: list[int] = []
    async for profile in database[PROFILES].find(_live()):
        rows.append(profile_features(profile))
        labels.append(int(purchased(profile)))
    estimator, report = await asyncio.to_thread(fit_propensity, rows, labels)
    moment = now or datetime.now(UTC)
    info = await registry.save(
        estimator,
        kind=PROPENSITY_MODEL,
        metrics=report.metrics(),
        features=report.features,
        window={"until": moment, "profiles": report.profiles},
        now=moment,
    )
    report.version = info.version
    if activate:
        await registry.activate(info.version)
        report.activated = True
    return estimator, report


async def score_profiles(
    database: AsyncDatabase[dict[str, Any]], estimator: Any, *, batch: int = _BATCH
) -> tuple[int, dict[str, int]]:
    """Write `scores.purchasePropensity` into every profile; returns (count, score bands)."""
    bands = {"<0.3": 0, "0.3-0.7": 0, ">=0.7": 0}
    written = 0
    pending: list[tuple[Any, dict[str, float]]] = []

    async def flush() -> None:
        nonlocal written
        if not pending:
            return
        scores = estimator.predict_proba([row for _, row in pending])[:, 1]
        requests = []
        for (profile_id, _), raw in zip(pending, scores, strict=True):
            score = round(min(max(float(raw), 0.0), 1.0), 4)
            band = "<0.3" if score < 0.3 else ">=0.7" if score >= 0.7 else "0.3-0.7"
            bands[band] += 1
            # Bumping the version makes a concurrent event ingest (a version-checked
            # replace of the whole profile) retry on top of the score, not erase it.
            update = {"$set": {SCORE_FIELD: score}, "$inc": {"version": 1}}
            requests.append(UpdateOne({"_id": profile_id}, update))
        await database[PROFILES].bulk_write(requests, ordered=False)
        written += len(requests)
        pending.clear()

    async for profile in database[PROFILES].find(_live()):
        pending.append((profile["_id"], profile_features(profile)))
        if len(pending) >= batch:
            await flush()
    await flush()
    return written, bands
