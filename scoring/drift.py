"""Drift: how far recent traffic has moved from what the active model was trained on.

Numeric features and the model's score are compared with the two-sample
Kolmogorov-Smirnov test; categorical features with the population stability
index (PSI) and a chi-square test of the category counts. The report is
stored in `models.drift` and the largest statistic of each test is exported
as the `tessera_model_drift_max{test="ks"|"psi"}` gauge. Common reading of PSI: below 0.1 stable,
0.1-0.25 moderate shift, above 0.25 a large shift; a KS statistic is the
largest gap between the two cumulative distributions (0 = identical, 1 = disjoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from scipy.stats import chi2_contingency, ks_2samp

from common import collections
from scoring.errors import ModelNotFound, NotEnoughData, ScoringError
from scoring.exposures import EXPOSURES, block_exposures
from scoring.features import candidate_row, categorical_features, numeric_features
from scoring.metrics import MODEL_DRIFT_MAX
from scoring.registry import VARIANT_MODEL, LoadedModel, ModelRegistry

DRIFT = collections.MODEL_DRIFT
#: Below this many values on either side a feature is reported but not tested.
MIN_SAMPLE = 20
#: Added to every category's share so a category absent on one side stays finite.
PSI_EPSILON = 1e-4
MISSING = "(none)"
#: The tests whose largest statistic is exported, each under its own label.
DRIFT_TESTS = ("ks", "psi")


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift test."""

    name: str
    test: str  # "ks" or "psi"
    statistic: float | None
    p_value: float | None
    reference_n: int
    recent_n: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every feature's drift, worst first, and the largest statistic."""

    features: list[FeatureDrift]
    max_statistic: float | None
    reference_n: int
    recent_n: int
    message: str = ""
    model_version: str | None = None
    computed_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON/BSON-friendly form."""
        return asdict(self)

    def format(self, limit: int = 15) -> str:
        """A human-readable summary (what `python -m gateway models drift` prints)."""
        lines = [
            f"drift of {self.model_version or 'the model'}: "
            f"{self.reference_n} reference vs {self.recent_n} recent snapshots",
        ]
        if self.extra.get("scope"):
            lines.append(f"  recent: {self.extra['scope']}")
        if self.message:
            lines.append(f"  {self.message}")
        if self.max_statistic is not None:
            lines.append(f"  max statistic {self.max_statistic:.4f}")
        for item in self.features[:limit]:
            stat = "n/a" if item.statistic is None else f"{item.statistic:.4f}"
            p = "" if item.p_value is None else f" p={item.p_value:.3g}"
            note = f" ({item.note})" if item.note else ""
            lines.append(f"  {item.test.upper():3} {item.name:32} {stat}{p}{note}")
        return "\n".join(lines)


def ks_drift(name: str, reference: Sequence[float], recent: Sequence[float]) -> FeatureDrift:
    """Kolmogorov-Smirnov two-sample test of a numeric feature."""
    if min(len(reference), len(recent)) < MIN_SAMPLE:
        return FeatureDrift(
            name, "ks", None, None, len(reference), len(recent), f"fewer than {MIN_SAMPLE} values"
        )
    result = ks_2samp(reference, recent)
    return FeatureDrift(
        name,
        "ks",
        round(float(result.statistic), 5),
        float(result.pvalue),
        len(reference),
        len(recent),
    )


def population_stability_index(reference: Counter[str], recent: Counter[str]) -> float:
    """PSI = Σ (recent% - reference%) · ln(recent% / reference%) over the categories."""
    categories = set(reference) | set(recent)
    ref_total, new_total = sum(reference.values()), sum(recent.values())
    psi = 0.0
    for category in categories:
        expected = reference[category] / ref_total + PSI_EPSILON
        actual = recent[category] / new_total + PSI_EPSILON
        psi += (actual - expected) * math.log(actual / expected)
    return psi


def psi_drift(name: str, reference: Counter[str], recent: Counter[str]) -> FeatureDrift:
    """PSI and the chi-square p-value of a categorical feature's counts."""
    ref_n, new_n = sum(reference.values()), sum(recent.values())
    if min(ref_n, new_n) < MIN_SAMPLE:
        return FeatureDrift(
            name, "psi", None, None, ref_n, new_n, f"fewer than {MIN_SAMPLE} values"
        )
    categories = sorted(set(reference) | set(recent))
    p_value: float | None = None
    if len(categories) > 1:
        table = [[reference[c] for c in categories], [recent[c] for c in categories]]
        p_value = float(chi2_contingency(table).pvalue)
    return FeatureDrift(
        name,
        "psi",
        round(population_stability_index(reference, recent), 5),
        p_value,
        ref_n,
        new_n,
    )


def _numeric_columns(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    columns: dict[str, list[float]] = {}
    for snapshot in snapshots:
        for name, value in numeric_features(snapshot).items():
            columns.setdefault(name, []).append(value)
    return columns


def _categorical_columns(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    columns: dict[str, Counter[str]] = {}
    names = {n for s in snapshots for n in categorical_features(s)}
    for snapshot in snapshots:
        values = categorical_features(snapshot)
        for name in names:
            # An empty list (no audience) or an absent value is a category of its own.
            columns.setdefault(name, Counter()).update(values.get(name) or [MISSING])
    return columns


def compute_drift(
    reference_snapshots: Sequence[Mapping[str, Any]],
    reference_scores: Sequence[float],
    recent_snapshots: Sequence[Mapping[str, Any]],
    recent_scores: Sequence[float],
) -> DriftReport:
    """Compare recent snapshots and scores with the reference ones, feature by feature."""
    if not reference_snapshots or not recent_snapshots:
        side = "reference (the model's training sample)" if not reference_snapshots else "recent"
        return DriftReport(
            [],
            None,
            len(reference_snapshots),
            len(recent_snapshots),
            f"no {side} snapshots: nothing to compare",
        )
    features: list[FeatureDrift] = []
    ref_numeric, new_numeric = (
        _numeric_columns(reference_snapshots),
        _numeric_columns(recent_snapshots),
    )
    for name in sorted(set(ref_numeric) | set(new_numeric)):
        features.append(ks_drift(name, ref_numeric.get(name, []), new_numeric.get(name, [])))
    ref_cat, new_cat = (
        _categorical_columns(reference_snapshots),
        _categorical_columns(recent_snapshots),
    )
    for name in sorted(set(ref_cat) | set(new_cat)):
        reference = ref_cat.get(name) or Counter({MISSING: len(reference_snapshots)})
        recent = new_cat.get(name) or Counter({MISSING: len(recent_snapshots)})
        features.append(psi_drift(name, reference, recent))
    if reference_scores or recent_scores:
        features.append(ks_drift("(score)", list(reference_scores), list(recent_scores)))
    tested = [f.statistic for f in features if f.statistic is not None]
    small = min(len(reference_snapshots), len(recent_snapshots)) < MIN_SAMPLE
    message = (
        f"samples too small to test (fewer than {MIN_SAMPLE} snapshots on one side)"
        if small
        else ""
    )
    features.sort(key=lambda f: -1.0 if f.statistic is None else f.statistic, reverse=True)
    return DriftReport(
        features,
        max(tested) if tested else None,
        len(reference_snapshots),
        len(recent_snapshots),
        message,
    )


def _scores(estimator: Any, docs: Sequence[Mapping[str, Any]]) -> list[float]:
    """The model's score of every candidate of each exposure, whichever was shown.

    Scoring all candidates, as the training sample does, keeps the policy out of
    the comparison: a greedy model shows its best-scored variant, so the scores
    of the variants *shown* rise once it serves even when visitors have not changed.
    """
    rows = [
        candidate_row(
            doc.get("features") or {},
            str(doc.get("blockId")),
            str(candidate.get("variantId")),
            candidate.get("tags") or [],
        )
        for doc in docs
        for candidate in doc.get("candidates") or ()
    ]
    return estimator.predict_proba(rows)[:, 1].tolist() if rows else []


def _contested_blocks(pages: Sequence[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The pages' blocks with a choice among 2+ candidates, like the training sample's."""
    return [
        record
        for page in pages
        for record in block_exposures(page)
        if len(record.get("candidates") or ()) >= 2
    ][:limit]


def _compare(
    estimator: Any,
    reference_snapshots: Sequence[Mapping[str, Any]],
    reference_scores: Sequence[float],
    docs: Sequence[Mapping[str, Any]],
) -> DriftReport:
    """Score the recent blocks' candidates and compare them with the reference (CPU-bound)."""
    snapshots = [doc.get("features") or {} for doc in docs]
    return compute_drift(reference_snapshots, reference_scores, snapshots, _scores(estimator, docs))


def export_drift(report: DriftReport | None) -> None:
    """Set `tessera_model_drift_max{test}` per test; a test without a statistic is removed.

    KS statistics (0-1) and PSI (unbounded) are not comparable, so each test has
    its own sample. `None` (no report describes the serving model) removes both:
    an absent sample reads as "unknown", where a stale or NaN value could
    silence or trip an alert.
    """
    for test in DRIFT_TESTS:
        stats = [
            f.statistic
            for f in (report.features if report is not None else ())
            if f.test == test and f.statistic is not None
        ]
        if stats:
            MODEL_DRIFT_MAX.labels(test=test).set(max(stats))
        else:
            with contextlib.suppress(KeyError):
                MODEL_DRIFT_MAX.remove(test)


def report_from_document(doc: Mapping[str, Any]) -> DriftReport:
    """Rebuild a stored `models.drift` document (as `as_dict` wrote it)."""
    features = [
        FeatureDrift(**{k: v for k, v in item.items() if k in FeatureDrift.__slots__})
        for item in doc.get("features") or ()
        if isinstance(item, Mapping)
    ]
    max_statistic = doc.get("max_statistic")
    return DriftReport(
        features,
        float(max_statistic) if isinstance(max_statistic, (int, float)) else None,
        int(doc.get("reference_n") or 0),
        int(doc.get("recent_n") or 0),
        str(doc.get("message") or ""),
        model_version=doc.get("model_version"),
        computed_at=doc.get("computed_at"),
    )


async def drift_report(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    *,
    since: datetime,
    kind: str = VARIANT_MODEL,
    limit: int = 5000,
    now: datetime | None = None,
    current: Callable[[], LoadedModel | None] | None = None,
) -> DriftReport:
    """Compare exposures since `since` with the active model's training sample; store it.

    `current` returns a model already loaded (a `ModelServer`'s): used when it is
    the active version, instead of fetching and unpickling the artifact again.
    A report that cannot be computed (no active model, no sample, an artifact
    refused) removes the `tessera_model_drift_max` samples before raising.
    """
    try:
        report = await _drift_report(database, registry, since, kind, limit, now, current)
    except ScoringError:
        export_drift(None)
        raise
    await database[DRIFT].replace_one({"_id": kind}, {"_id": kind, **report.as_dict()}, upsert=True)
    export_drift(report)
    return report


async def _drift_report(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    since: datetime,
    kind: str,
    limit: int,
    now: datetime | None,
    current: Callable[[], LoadedModel | None] | None,
) -> DriftReport:
    version = await registry.active_version(kind)
    if version is None:
        raise ModelNotFound(f"no {kind} model is active: nothing to compare drift against")
    active = current() if current is not None else None
    if active is None or active.version != version:
        active = await registry.load(version)
    sample = active.sample
    reference_snapshots = list(sample.get("snapshots") or [])
    reference_scores = [float(s) for s in sample.get("scores") or []]
    if not reference_snapshots:
        raise NotEnoughData(f"model {active.version} has no stored training sample")
    # Page views the model scored: the page-level modelVersion is set only then
    # (a fallback block still names the model that timed out).
    served = {"ts": {"$gte": since}, "modelVersion": active.version}
    fields = {"ts": 1, "features": 1, "blocks": 1, "modelVersion": 1}
    newest = [("ts", -1)]
    pages = await database[EXPOSURES].find(served, fields).sort(newest).limit(limit).to_list()
    docs = await asyncio.to_thread(_contested_blocks, pages, limit)
    scope = "served by the model"
    if not docs:
        # Nothing served by it yet (just activated, or exploring): still compare the features.
        scope = "all exposures (none served by the model yet)"
        cursor = database[EXPOSURES].find({"ts": {"$gte": since}}, fields)
        pages = await cursor.sort(newest).limit(limit).to_list()
        docs = await asyncio.to_thread(_contested_blocks, pages, limit)
    report = await asyncio.to_thread(
        _compare, active.estimator, reference_snapshots, reference_scores, docs
    )
    return DriftReport(
        report.features,
        report.max_statistic,
        report.reference_n,
        report.recent_n,
        report.message or ("" if docs else f"no exposures since {since.isoformat()}"),
        model_version=active.version,
        computed_at=now or datetime.now(UTC),
        extra={"since": since, "scope": scope},
    )
