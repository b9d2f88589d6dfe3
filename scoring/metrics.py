"""Scoring and exposure metrics, in prometheus_client's default registry (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXPOSURES_LOGGED = Counter(
    "tessera_exposures_logged",
    "Exposure documents written to MongoDB: one per served page view, however many blocks.",
)
EXPOSURES_DROPPED = Counter(
    "tessera_exposures_dropped",
    "Exposure documents (page views) dropped because the queue was full or MongoDB refused them.",
    ["cause"],
)
EXPOSURE_WRITES_DEFERRED = Counter(
    "tessera_exposure_writes_deferred",
    "Times the exposure writer held a batch back because profile reads were slow.",
)
SCORING = Counter(
    "tessera_scoring",
    "Page scoring calls by outcome (scored, timeout, error, no_model, nothing_to_score).",
    ["outcome"],
)
SCORING_SECONDS = Histogram(
    "tessera_scoring_seconds",
    "Time to score all candidate variants of a page.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
MODEL_DRIFT_MAX = Gauge(
    "tessera_model_drift_max",
    "Largest drift statistic of the active model's latest drift report, per test: "
    "ks (Kolmogorov-Smirnov, 0-1) or psi (population stability index, unbounded). "
    "Absent while no report describes the model serving now.",
    ["test"],
)
ACTIVE_MODEL = Gauge(
    "tessera_active_model",
    "1 for the model version currently serving.",
    ["kind", "version"],
)
MODEL_LOAD_FAILURES = Counter(
    "tessera_model_load_failures",
    "Activated model versions a server refused to load (bad signature, load error).",
    ["kind"],
)
