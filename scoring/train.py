"""Train the variant click model from logged exposures and register it.

A few small pipelines are fitted on the training window and the one with the
lowest validation log loss wins; its probabilities are then calibrated
(sigmoid, or isotonic when there is enough data for it), evaluated on the
validation window (AUC, log loss, reliability table, off-policy IPS of its
greedy policy) and finally refitted on every row before it is saved, signed,
in the registry.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction import DictVectorizer, FeatureHasher
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from scoring.compact import compact
from scoring.dataset import MIN_ROWS, Dataset, LoggedExposure, load_dataset
from scoring.errors import NotEnoughData
from scoring.evaluation import (
    LoggedChoice,
    OffPolicyEstimate,
    ReliabilityBin,
    expected_calibration_error,
    off_policy_estimate,
    reliability_table,
)
from scoring.features import FEATURES_VERSION
from scoring.registry import VARIANT_MODEL, ModelRegistry

#: Dense gradient boosting is only tried when rows x features stays this small.
MAX_DENSE_CELLS = 20_000_000
#: Below this, trees mostly memorise noise: only the linear models are tried.
MIN_BOOSTING_ROWS = 1000
#: Isotonic calibration is piecewise constant: on small samples it overfits and, worse for
#: ranking, maps nearby scores of different variants to the same value (ties). Sigmoid is
#: strictly monotone, so it keeps the model's ranking; isotonic only with a lot of data.
ISOTONIC_MIN_ROWS = 100_000
ISOTONIC_MIN_MINORITY = 5_000
DRIFT_SAMPLE_SIZE = 1000


def _logistic(c: float = 1.0) -> LogisticRegression:
    # lbfgs on 0/1 and log-count features converges well before this bound.
    return LogisticRegression(C=c, max_iter=5000)


def candidate_pipelines(n_rows: int, n_features: int) -> dict[str, Pipeline]:
    """The pipelines tried, by name (dense boosting only when it fits in memory)."""
    pipelines = {
        "dictvectorizer+logistic": Pipeline(
            [("vectorize", DictVectorizer()), ("model", _logistic())]
        ),
        # Stronger regularisation: the visitor x variant crosses are many and mostly noise.
        "dictvectorizer+logistic-c0.1": Pipeline(
            [("vectorize", DictVectorizer()), ("model", _logistic(0.1))]
        ),
        "hashing+logistic": Pipeline(
            [
                ("vectorize", FeatureHasher(n_features=2**15, alternate_sign=False)),
                ("model", _logistic()),
            ]
        ),
    }
    if n_rows >= MIN_BOOSTING_ROWS and n_rows * n_features <= MAX_DENSE_CELLS:
        pipelines["dictvectorizer+gradient-boosting"] = Pipeline(
            [
                ("vectorize", DictVectorizer(sparse=False)),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        max_iter=60, learning_rate=0.1, max_leaf_nodes=15, random_state=0
                    ),
                ),
            ]
        )
    return pipelines


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One tried pipeline's validation scores."""

    name: str
    log_loss: float
    auc: float


@dataclass(slots=True)
class TrainingReport:
    """What training measured, and the version it registered."""

    model: str
    calibration: str
    auc: float
    log_loss: float
    ece: float
    reliability: list[ReliabilityBin]
    off_policy: OffPolicyEstimate
    candidates: list[CandidateScore]
    rows_train: int
    rows_validation: int
    click_rate_train: float
    click_rate_validation: float
    n_features: int
    window: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    activated: bool = False

    def metrics(self) -> dict[str, Any]:
        """The metrics stored with the model in the registry."""
        return {
            "model": self.model,
            "calibration": self.calibration,
            "auc": self.auc,
            "logLoss": self.log_loss,
            "ece": self.ece,
            "reliability": [asdict(b) for b in self.reliability],
            "offPolicy": self.off_policy.as_dict(),
            "candidates": [asdict(c) for c in self.candidates],
            "rows": {"train": self.rows_train, "validation": self.rows_validation},
            "clickRate": {"train": self.click_rate_train, "validation": self.click_rate_validation},
            "featuresVersion": FEATURES_VERSION,
        }

    def format(self) -> str:
        """A human-readable summary (what `python -m gateway train` prints)."""
        ope = self.off_policy
        lines = [
            f"model {self.version or '(not saved)'}{' (active)' if self.activated else ''}",
            f"  pipeline {self.model}, calibration {self.calibration}, {self.n_features} features",
            f"  rows: {self.rows_train} train, {self.rows_validation} validation "
            f"(click rate {self.click_rate_train:.4f} / {self.click_rate_validation:.4f})",
            f"  validation: AUC {self.auc:.4f}, log loss {self.log_loss:.4f}, ECE {self.ece:.4f}",
            "  tried: "
            + ", ".join(f"{c.name} (log loss {c.log_loss:.4f})" for c in self.candidates),
            f"  off-policy (validation, {ope.n} explored exposures, {ope.matches} match the "
            f"greedy policy; {ope.unexplored} chosen with certainty left out):",
            f"    logged policy click rate {_figure(ope.logged_rate)}",
            f"    greedy model policy: IPS {_figure(ope.ips)}, SNIPS {_figure(ope.snips)}",
            "  reliability (predicted → observed, count):",
        ]
        lines += [
            f"    [{b.low:.1f}, {b.high:.1f}) "
            f"{b.mean_predicted:.4f} → {b.observed:.4f}  n={b.count}"
            for b in self.reliability
            if b.count and b.mean_predicted is not None and b.observed is not None
        ]
        return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "n/a (no explored exposures)" if value is None else f"{value:.4f}"


def _positive(estimator: Any, rows: Sequence[Mapping[str, float]]) -> np.ndarray[Any, Any]:
    return np.asarray(estimator.predict_proba(rows)[:, 1], dtype=float)


def greedy_choices(estimator: Any, exposures: Sequence[LoggedExposure]) -> list[LoggedChoice]:
    """Each exposure's logged choice beside the model's argmax over its logged candidates."""
    rows: list[dict[str, float]] = []
    for exposure in exposures:
        rows.extend(exposure.candidate_rows())
    scores = _positive(estimator, rows) if rows else np.zeros(0)
    choices, offset = [], 0
    for exposure in exposures:
        count = len(exposure.candidates)
        best = int(np.argmax(scores[offset : offset + count]))
        offset += count
        choices.append(
            LoggedChoice(
                chosen=exposure.variant_id,
                propensity=exposure.propensity,
                reward=float(exposure.clicked),
                target=exposure.candidates[best][0],
            )
        )
    return choices


def _calibration_method(labels: Sequence[int]) -> str:
    minority = min(sum(labels), len(labels) - sum(labels))
    if len(labels) >= ISOTONIC_MIN_ROWS and minority >= ISOTONIC_MIN_MINORITY:
        return "isotonic"
    return "sigmoid"


def _calibrated(pipeline: Pipeline, method: str, labels: Sequence[int]) -> CalibratedClassifierCV:
    minority = min(sum(labels), len(labels) - sum(labels))
    if minority < 2:
        raise NotEnoughData(f"only {minority} example(s) of one class: calibration needs 2+")
    return CalibratedClassifierCV(clone(pipeline), method=method, cv=min(3, minority))


def feature_names(dataset: Dataset, pipeline_name: str) -> list[str]:
    """The vectorizer's feature names, or the snapshot names when hashing."""
    if pipeline_name.startswith("hashing"):
        return sorted({name for e in dataset.all for name in e.snapshot})
    rows, _ = Dataset.xy(dataset.all)
    return [str(n) for n in DictVectorizer().fit(rows).get_feature_names_out()]


def fit_variant_model(dataset: Dataset) -> tuple[Any, TrainingReport, list[str], dict[str, Any]]:
    """Choose, calibrate, evaluate and refit; returns (estimator, report, features, sample)."""
    # One thread: training runs beside a serving gateway, and OpenMP threads spinning
    # on shared cores make small fits slower, not faster.
    with threadpool_limits(limits=1):
        return _fit_variant_model(dataset)


def _fit_variant_model(dataset: Dataset) -> tuple[Any, TrainingReport, list[str], dict[str, Any]]:
    x_train, y_train = Dataset.xy(dataset.train)
    x_valid, y_valid = Dataset.xy(dataset.validation)
    n_features = len(DictVectorizer().fit(x_train).feature_names_)
    tried: list[CandidateScore] = []
    best_name, best_loss = "", float("inf")
    pipelines = candidate_pipelines(len(x_train), n_features)
    for name, pipeline in pipelines.items():
        fitted = clone(pipeline).fit(x_train, y_train)
        predicted = _positive(fitted, x_valid)
        loss = float(log_loss(y_valid, predicted, labels=[0, 1]))
        tried.append(
            CandidateScore(name, round(loss, 5), round(float(roc_auc_score(y_valid, predicted)), 5))
        )
        if loss < best_loss:
            best_name, best_loss = name, loss
    method = _calibration_method(y_train)
    evaluated = _calibrated(pipelines[best_name], method, y_train).fit(x_train, y_train)
    predicted = _positive(evaluated, x_valid)
    table = reliability_table(predicted.tolist(), y_valid)
    report = TrainingReport(
        model=best_name,
        calibration=method,
        auc=round(float(roc_auc_score(y_valid, predicted)), 5),
        log_loss=round(float(log_loss(y_valid, predicted, labels=[0, 1])), 5),
        ece=expected_calibration_error(table),
        reliability=table,
        off_policy=off_policy_estimate(greedy_choices(evaluated, dataset.validation)),
        candidates=tried,
        rows_train=len(y_train),
        rows_validation=len(y_valid),
        click_rate_train=round(sum(y_train) / len(y_train), 5),
        click_rate_validation=round(sum(y_valid) / len(y_valid), 5),
        n_features=n_features,
    )
    # The artifact learns from every row, the validation window included.
    x_all, y_all = x_train + x_valid, y_train + y_valid
    final = _calibrated(pipelines[best_name], _calibration_method(y_all), y_all).fit(x_all, y_all)
    # Served in its compact form when it has one: the same probabilities, a tenth of the cost.
    final = compact(final)
    picked = random.Random(0).sample(
        range(len(dataset.train)), min(DRIFT_SAMPLE_SIZE, len(dataset.train))
    )
    sampled = [dataset.train[i] for i in sorted(picked)]
    sample = {
        "snapshots": [e.snapshot for e in sampled],
        # Every candidate's score, as drift scores recent traffic: independent of the policy.
        "scores": [
            round(float(s), 6)
            for s in _positive(final, [row for e in sampled for row in e.candidate_rows()])
        ],
    }
    return final, report, feature_names(dataset, best_name), sample


async def train_variant_model(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    *,
    since: datetime,
    until: datetime,
    activate: bool = False,
    min_exposures: int = MIN_ROWS,
    now: Callable[[], datetime] | None = None,
) -> TrainingReport:
    """Train on the attributed exposures of [since, until], register, optionally activate."""
    dataset = await load_dataset(database, since=since, until=until, min_rows=min_exposures)
    # Fitting is CPU-bound: keep the event loop (and a serving gateway) responsive.
    estimator, report, features, sample = await asyncio.to_thread(fit_variant_model, dataset)
    report.window = {"since": since, "until": until, "exposures": len(dataset.all)}
    info = await registry.save(
        estimator,
        kind=VARIANT_MODEL,
        metrics=report.metrics(),
        features=features,
        window=report.window,
        sample=sample,
        now=(now or (lambda: datetime.now(UTC)))(),
    )
    report.version = info.version
    if activate:
        await registry.activate(info.version)
        report.activated = True
    return report
