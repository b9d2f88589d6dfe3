"""Learned segments: k-means over standardized behavioural features, with readable labels.

`profile_features` reads one profile: RFM (orders, lifetime value, days since
the last order), engagement (page views, sessions, clicks, searches, days
since the last visit), the cart, the device, and the share of each of the
most common interest categories (decayed to now). Counts and days are
`log1p`-scaled, then every feature is standardized (z-scores), so no unit
dominates the distance.

`fit_segmentation` runs scikit-learn's `MiniBatchKMeans` for each k of the
range and keeps the k with the best silhouette score. Each segment is named
after its most distinctive features: the (up to) three with the largest
|z| of its centroid beyond `DISTINCT_Z`, in words (`frequent · outdoor ·
mobile`); labels are unique within a segmentation. `Segmentation.assign` puts
a profile in the segment of the nearest centroid (what ingestion does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from profiles.traits import decayed
from scoring.errors import NotEnoughData

#: Behavioural features, before the device and interest ones.
NUMERIC = (
    "pageViews",
    "sessions",
    "clicks",
    "searches",
    "orders",
    "ltv",
    "recencyDays",
    "idleDays",
    "cartItems",
)
DEVICES = ("mobile", "desktop", "tablet")
#: Interest categories kept as features: the most common ones at training.
MAX_CATEGORIES = 8
#: Days since an order, for a visitor who never ordered (and the most counted).
RECENCY_CAP = 365.0
#: A centroid coordinate (z-score) this far from 0 makes a feature distinctive.
DISTINCT_Z = 0.5
WORDS_PER_LABEL = 3
SEPARATOR = " · "
#: Words for a feature far above (first) or below (second) the average visitor.
WORDS: Mapping[str, tuple[str | None, str | None]] = {
    "pageViews": ("engaged", "light"),
    "sessions": ("loyal", None),
    "clicks": ("clicker", None),
    "searches": ("searcher", None),
    "orders": ("frequent", "non-buyer"),
    "ltv": ("high-value", None),
    "recencyDays": ("lapsed", "recent-buyer"),
    "idleDays": ("dormant", "active"),
    "cartItems": ("cart-holder", None),
    **{f"device.{device}": (device, None) for device in DEVICES},
}
MIN_PROFILES = 20
DEFAULT_K_RANGE = (3, 12)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _days_since(moment: Any, now: datetime) -> float | None:
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elapsed: float = (now - moment).total_seconds()
    return max(0.0, elapsed / 86400.0)


def interests(profile: Mapping[str, Any], now: datetime) -> dict[str, float]:
    """The profile's interest scores decayed to `now`."""
    raw = profile.get("interests")
    if not isinstance(raw, Mapping):
        return {}
    decay = profile.get("decay")
    half_life = 30.0
    if isinstance(decay, Mapping) and isinstance(decay.get("halfLifeDays"), (int, float)):
        half_life = float(decay["halfLifeDays"]) or 30.0
    out = {}
    for key, value in raw.items():
        score = decayed(value, now, half_life)
        if math.isfinite(score) and score > 0:
            out[str(key)] = score
    return out


def feature_names(categories: Sequence[str]) -> tuple[str, ...]:
    """Every feature of a segmentation over these interest categories."""
    return (
        *NUMERIC,
        *(f"device.{device}" for device in DEVICES),
        *(f"interest.{category}" for category in categories),
    )


def profile_features(
    profile: Mapping[str, Any], now: datetime, categories: Sequence[str]
) -> list[float]:
    """One profile's features, in `feature_names(categories)` order (before scaling)."""
    traits = profile.get("traits") if isinstance(profile.get("traits"), Mapping) else {}
    cart = profile.get("cart") if isinstance(profile.get("cart"), Mapping) else {}
    assert isinstance(traits, Mapping)
    assert isinstance(cart, Mapping)
    recency = _days_since(traits.get("lastOrderAt"), now)
    idle = _days_since(traits.get("lastSeen"), now)
    row = [
        math.log1p(max(0.0, _number(traits.get("pageViews")))),
        math.log1p(max(0.0, _number(traits.get("sessions")))),
        math.log1p(max(0.0, _number(traits.get("clicks")))),
        math.log1p(max(0.0, _number(traits.get("searches")))),
        math.log1p(max(0.0, _number(traits.get("orders")))),
        math.log1p(max(0.0, _number(traits.get("ltv")))),
        math.log1p(min(RECENCY_CAP, RECENCY_CAP if recency is None else recency)),
        math.log1p(min(RECENCY_CAP, RECENCY_CAP if idle is None else idle)),
        math.log1p(max(0.0, _number(cart.get("items")))),
    ]
    device = traits.get("device")
    row.extend(1.0 if device == name else 0.0 for name in DEVICES)
    scores = interests(profile, now)
    total = sum(scores.values())
    row.extend(scores.get(category, 0.0) / total if total else 0.0 for category in categories)
    return row


def common_categories(profiles: Sequence[Mapping[str, Any]], now: datetime) -> tuple[str, ...]:
    """The interest categories with the most visitors, at most `MAX_CATEGORIES`."""
    counts: dict[str, int] = {}
    for profile in profiles:
        for category in interests(profile, now):
            counts[category] = counts.get(category, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(category for category, _ in ranked[:MAX_CATEGORIES])


def _words(feature: str, z: float) -> str | None:
    if feature.startswith("interest."):
        return feature.removeprefix("interest.") if z > 0 else None
    high, low = WORDS.get(feature, (None, None))
    return high if z > 0 else low


def describe(centroid: Sequence[float], names: Sequence[str], limit: int) -> list[str]:
    """The words of a centroid's most distinctive features, most distinctive first."""
    z_of = dict(zip(names, centroid, strict=True))
    ranked = sorted(
        (
            (abs(z), word)
            for z, name in zip(centroid, names, strict=True)
            if abs(z) >= DISTINCT_Z
            and (word := _words(name, z)) is not None
            # Long since an order means "lapsed" only for buyers: never-buyers count as
            # the longest recency too, and "non-buyer" already says what sets them apart.
            and not (word == "lapsed" and z_of.get("orders", 0.0) <= 0)
        ),
        key=lambda item: -item[0],
    )
    words: list[str] = []
    for _, word in ranked:
        if word not in words:
            words.append(word)
    return words[:limit]


def labels_for(centroids: np.ndarray[Any, Any], names: Sequence[str]) -> list[str]:
    """A unique, readable label per centroid (standardized coordinates)."""
    labels: list[str] = []
    for centroid in centroids:
        words = describe(centroid, names, WORDS_PER_LABEL) or ["typical"]
        label = SEPARATOR.join(words)
        if label in labels:
            # Same three words: a fourth tells them apart, else a number does.
            more = describe(centroid, names, WORDS_PER_LABEL + 1)
            label = SEPARATOR.join(more) if len(more) > len(words) else label
        base, n = label, 2
        while label in labels:
            label, n = f"{base} #{n}", n + 1
        labels.append(label)
    return labels


@dataclass(slots=True)
class Segmentation:
    """A trained segmentation (a registry artifact of kind `segments`)."""

    features: tuple[str, ...]
    categories: tuple[str, ...]
    mean: np.ndarray[Any, np.dtype[np.float64]]
    scale: np.ndarray[Any, np.dtype[np.float64]]
    #: Standardized coordinates, one row per segment (segment id = row).
    centroids: np.ndarray[Any, np.dtype[np.float64]]
    labels: tuple[str, ...]
    sizes: tuple[int, ...]
    silhouettes: dict[int, float]
    trained_at: datetime
    seed: int = 0
    #: Adjusted Rand index of this k-means against runs with two other seeds.
    seed_stability: float | None = None
    #: Mean distance of members to their centroid at training, per segment.
    spread: tuple[float, ...] = field(default_factory=tuple)

    @property
    def k(self) -> int:
        """The number of segments."""
        return int(self.centroids.shape[0])

    def standardize(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Raw feature rows as z-scores."""
        z: np.ndarray[Any, Any] = (rows - self.mean) / self.scale
        return z

    def nearest(
        self, rows: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The segment of each raw row, and its distance to that centroid."""
        z = self.standardize(np.asarray(rows, dtype=np.float64))
        distances = np.sqrt(((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2))
        members = distances.argmin(axis=1)
        return members, distances[np.arange(len(members)), members]

    def rows(self, profiles: Sequence[Mapping[str, Any]], now: datetime) -> np.ndarray[Any, Any]:
        """The raw feature rows of `profiles`."""
        return np.asarray(
            [profile_features(p, now, self.categories) for p in profiles], dtype=np.float64
        ).reshape(len(profiles), len(self.features))

    def assign(self, profile: Mapping[str, Any], now: datetime) -> tuple[int, str]:
        """The segment (id, label) of the centroid nearest to `profile`."""
        members, _ = self.nearest(self.rows([profile], now))
        segment = int(members[0])
        return segment, self.labels[segment]

    def centroid_values(self) -> np.ndarray[Any, Any]:
        """The centroids in the features' own (log-scaled) units."""
        values: np.ndarray[Any, Any] = self.centroids * self.scale + self.mean
        return values


def fit_segmentation(
    profiles: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    k_values: Sequence[int],
    seed: int = 0,
) -> Segmentation:
    """Cluster `profiles` for each k, keep the best silhouette, label the segments."""
    if len(profiles) < MIN_PROFILES:
        raise NotEnoughData(f"{len(profiles)} profiles: segments need at least {MIN_PROFILES}")
    categories = common_categories(profiles, now)
    names = feature_names(categories)
    raw = np.asarray([profile_features(p, now, categories) for p in profiles], dtype=np.float64)
    mean = raw.mean(axis=0)
    scale = raw.std(axis=0)
    scale[scale == 0] = 1.0
    z = (raw - mean) / scale
    sample = min(len(profiles), 4000)
    best: tuple[float, int, Any] | None = None
    silhouettes: dict[int, float] = {}
    for k in sorted(set(k_values)):
        if not 2 <= k < len(profiles):
            continue
        kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=1024).fit(z)
        members = kmeans.labels_
        if len(set(members.tolist())) < 2:
            continue
        score = float(silhouette_score(z, members, sample_size=sample, random_state=seed))
        silhouettes[k] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, k, kmeans)
    if best is None:
        raise NotEnoughData(
            f"no k in {sorted(set(k_values))} splits {len(profiles)} profiles into segments"
        )
    _, k, kmeans = best
    members = np.asarray(kmeans.labels_)
    # Segment ids by size, largest first, so reports read top-down.
    counts = np.bincount(members, minlength=k)
    order = np.argsort(-counts, kind="stable")
    centroids = np.asarray(kmeans.cluster_centers_, dtype=np.float64)[order]
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    members = remap[members]
    distances = np.sqrt(((z - centroids[members]) ** 2).sum(axis=1))
    spread = tuple(
        round(float(distances[members == s].mean()), 4) if (members == s).any() else 0.0
        for s in range(k)
    )
    stability = []
    for other in (seed + 1, seed + 2):
        again = MiniBatchKMeans(n_clusters=k, random_state=other, n_init=3, batch_size=1024)
        stability.append(adjusted_rand_score(members, again.fit(z).labels_))
    return Segmentation(
        features=names,
        categories=categories,
        mean=mean,
        scale=scale,
        centroids=centroids,
        labels=tuple(labels_for(centroids, names)),
        sizes=tuple(int(c) for c in counts[order]),
        silhouettes=silhouettes,
        trained_at=now,
        seed=seed,
        seed_stability=round(float(np.mean(stability)), 4),
        spread=spread,
    )
