"""Features: what a model sees about a visitor and a candidate variant.

A *snapshot* is a flat, JSON-friendly mapping taken from the targeting context
when a page is served; it is stored once in the page view's exposure document,
so training reads the exact values the serving model read. Values are numbers (numeric features),
strings (one categorical value) or lists of strings (a set of categories, such
as audience memberships).

`candidate_row` expands a snapshot for one candidate variant into the sparse
`{name: value}` row a `DictVectorizer` or `FeatureHasher` consumes. Every
visitor feature is also crossed with the variant, so even a linear model can
learn that one audience prefers one variant and another audience another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from blocks.context import TargetingContext

FeatureValue = float | str | list[str]
Snapshot = dict[str, FeatureValue]

#: Bump when the meaning of a feature changes; stored with every model.
FEATURES_VERSION = 1

#: Numeric traits read from the profile, log-scaled because they are counts or money.
_LOG_TRAITS = ("pageViews", "orders", "ltv", "sessions")
_MAX_INTERESTS = 10


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _log1p(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else round(math.log1p(max(number, 0.0)), 4)


def visitor_snapshot(context: TargetingContext) -> Snapshot:
    """The visitor and request features of `context`, flat and storable."""
    attributes = context.attributes
    snapshot: Snapshot = {
        "device": str(attributes.get("device") or "unknown"),
        "country": str(attributes.get("country") or "unknown"),
        "known": "yes" if attributes.get("known") else "no",
        "daypart": _daypart(attributes.get("hour")),
        "weekend": "yes" if attributes.get("dayOfWeek") in (6, 7) else "no",
        "audiences": sorted(context.audiences),
    }
    utm = attributes.get("utm")
    if isinstance(utm, Mapping) and utm.get("source"):
        snapshot["utmSource"] = str(utm["source"])
    traits = attributes.get("traits")
    if isinstance(traits, Mapping):
        for name in _LOG_TRAITS:
            value = _log1p(traits.get(name))
            if value is not None:
                snapshot[f"traits.{name}"] = value
    rfm = attributes.get("rfm")
    if isinstance(rfm, Mapping):
        recency = _number(rfm.get("recency_days"))
        if recency is not None:
            snapshot["rfm.recencyDays"] = round(recency, 2)
    interests = attributes.get("interests")
    if isinstance(interests, Mapping):
        ranked = sorted(
            ((str(k), v) for k, v in interests.items() if _number(v) is not None),
            key=lambda item: -float(item[1]),
        )
        for name, value in ranked[:_MAX_INTERESTS]:
            snapshot[f"interest.{name}"] = round(float(value), 4)
    scores = attributes.get("scores")
    if isinstance(scores, Mapping):
        propensity = _number(scores.get("purchasePropensity"))
        if propensity is not None:
            snapshot["scores.purchasePropensity"] = round(propensity, 4)
    return snapshot


def _daypart(hour: Any) -> str:
    if not isinstance(hour, int):
        return "unknown"
    if hour < 6:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


def _visitor_terms(snapshot: Mapping[str, Any]) -> dict[str, float]:
    terms: dict[str, float] = {}
    for name, value in snapshot.items():
        if isinstance(value, str):
            terms[f"{name}={value}"] = 1.0
        elif isinstance(value, list):
            for item in value:
                terms[f"{name}={item}"] = 1.0
        else:
            number = _number(value)
            if number is not None:
                terms[name] = number
    return terms


def candidate_row(
    snapshot: Mapping[str, Any], block_id: str, variant_id: str, tags: Iterable[str] = ()
) -> dict[str, float]:
    """The sparse feature row for showing `variant_id` of `block_id` to `snapshot`."""
    variant = f"variant={block_id}/{variant_id}"
    arm_terms = [variant, *(f"tag={tag}" for tag in tags)]
    row: dict[str, float] = {term: 1.0 for term in arm_terms}
    row[f"block={block_id}"] = 1.0
    visitor = _visitor_terms(snapshot)
    row.update(visitor)
    # The crosses are what let a model rank variants differently per visitor.
    for arm in arm_terms:
        for name, value in visitor.items():
            row[f"{arm}|{name}"] = value
    return row


def candidate_rows(
    snapshot: Mapping[str, Any], candidates: Sequence[tuple[str, str, Sequence[str]]]
) -> list[dict[str, float]]:
    """Rows for many `(block_id, variant_id, tags)` candidates of one visitor."""
    return [candidate_row(snapshot, block, variant, tags) for block, variant, tags in candidates]


def numeric_features(snapshot: Mapping[str, Any]) -> dict[str, float]:
    """The snapshot's numeric features (compared with Kolmogorov-Smirnov for drift)."""
    return {
        name: float(value)
        for name, value in snapshot.items()
        if not isinstance(value, (str, list)) and _number(value) is not None
    }


def categorical_features(snapshot: Mapping[str, Any]) -> dict[str, list[str]]:
    """The snapshot's categorical features, each as its list of values."""
    out: dict[str, list[str]] = {}
    for name, value in snapshot.items():
        if isinstance(value, str):
            out[name] = [value]
        elif isinstance(value, list):
            out[name] = [str(item) for item in value]
    return out
