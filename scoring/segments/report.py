"""`segments report`: sizes, centroids, drift over time and stability of the active segmentation.

- **Sizes**: the live profiles the active segmentation puts in each segment
  now (nearest centroid of today's features), beside the share at training
  and how many profiles already *hold* the segment (what targeting reads).
- **Centroids**: each segment's centre in standardized units (z-scores; the
  label names the largest) and in the features' own (log-scaled) units.
- **Drift over time**: every report (and the training) keeps one point in
  `segments.history` (sizes and mean distance to the centroid, no visitor);
  the report lists them and compares now with training: the population
  stability index (PSI) of the shares, and per segment the share change and
  the spread (mean distance of members to their centroid) relative to training.
  PSI above 0.2 or a spread 1.5 times the training one says: train again.
- **Stability**: the adjusted Rand index between the assignments of the
  active segmentation and of another run (`--against VERSION`, by default
  the one trained before it) on the same profiles today: 1 is the same
  partition, 0 what chance would give.

The chart is one self-contained HTML file (inline SVG, no script): sizes per
segment against training, shares over time, and the centroids as a heat map.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase
from sklearn.metrics import adjusted_rand_score

from common import collections
from scoring.errors import ModelNotFound
from scoring.registry import SEGMENTS_MODEL, ModelRegistry
from scoring.segments.model import Segmentation
from scoring.segments.training import load_profiles, record_snapshot

#: Population stability index above which the segments have drifted.
PSI_ALERT = 0.2
#: Spread (mean distance to the centroid) relative to training above which a segment has drifted.
SPREAD_ALERT = 1.5
HISTORY_POINTS = 30


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One segment today."""

    id: int
    label: str
    size: int
    share: float
    training_share: float
    holding: int
    spread: float
    training_spread: float
    centroid_z: dict[str, float]
    centroid: dict[str, float]

    @property
    def spread_ratio(self) -> float | None:
        """Spread now relative to training (None when there is no member now)."""
        if not self.size or not self.training_spread:
            return None
        return self.spread / self.training_spread


@dataclass(frozen=True, slots=True)
class Point:
    """One point of the segments' history."""

    at: datetime
    shares: tuple[float, ...]
    training: bool


@dataclass(slots=True)
class SegmentReport:
    """Everything `segments report` shows."""

    version: str
    k: int
    profiles: int
    rows: list[SegmentRow]
    psi: float
    history: list[Point]
    against: str | None = None
    ari: float | None = None
    silhouettes: dict[int, float] = field(default_factory=dict)
    seed_stability: float | None = None
    generated_at: datetime | None = None

    @property
    def drifted(self) -> bool:
        """Whether the shares or some segment's spread moved past the alert levels."""
        ratios = [r.spread_ratio for r in self.rows if r.spread_ratio is not None]
        return self.psi > PSI_ALERT or any(ratio > SPREAD_ALERT for ratio in ratios)

    def as_json(self) -> dict[str, Any]:
        """The report for programs."""
        return {
            "version": self.version,
            "k": self.k,
            "profiles": self.profiles,
            "segments": [
                {
                    "id": r.id,
                    "label": r.label,
                    "size": r.size,
                    "share": round(r.share, 6),
                    "trainingShare": round(r.training_share, 6),
                    "holding": r.holding,
                    "spread": round(r.spread, 6),
                    "trainingSpread": round(r.training_spread, 6),
                    "centroidZ": {k: round(v, 4) for k, v in r.centroid_z.items()},
                    "centroid": {k: round(v, 4) for k, v in r.centroid.items()},
                }
                for r in self.rows
            ],
            "drift": {
                "psi": round(self.psi, 6),
                "drifted": self.drifted,
                "history": [
                    {
                        "at": p.at.isoformat(),
                        "shares": [round(s, 6) for s in p.shares],
                        "training": p.training,
                    }
                    for p in self.history
                ],
            },
            "stability": {
                "against": self.against,
                "adjustedRandIndex": None if self.ari is None else round(self.ari, 6),
                "seedStability": self.seed_stability,
            },
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
        }

    def format(self, chart: str | None = None) -> str:
        """The table for people (and where the chart is)."""
        lines = [
            f"segments {self.version}: k = {self.k}, {self.profiles} live profiles",
            f"{'id':>3} {'label':40} {'size':>7} {'share':>7} {'train':>7} {'holding':>8} "
            f"{'spread':>7}  top centroid (z)",
        ]
        for r in self.rows:
            top = sorted(r.centroid_z.items(), key=lambda item: -abs(item[1]))[:3]
            centroid = ", ".join(f"{name} {z:+.1f}" for name, z in top)
            ratio = r.spread_ratio
            lines.append(
                f"{r.id:>3} {r.label[:40]:40} {r.size:>7} {r.share:7.1%} {r.training_share:7.1%} "
                f"{r.holding:>8} {'n/a' if ratio is None else f'{ratio:.2f}x':>7}  {centroid}"
            )
        state = "DRIFTED: train again" if self.drifted else "stable"
        lines.append(
            f"drift since training: PSI {self.psi:.4f} ({state}; alert above {PSI_ALERT}, "
            f"or a spread above {SPREAD_ALERT}x)"
        )
        lines.append(f"history ({len(self.history)} points):")
        for point in self.history:
            shares = " ".join(f"{s:5.1%}" for s in point.shares)
            mark = " (training)" if point.training else ""
            lines.append(f"  {point.at:%Y-%m-%d %H:%M}  {shares}{mark}")
        if self.against is None:
            lines.append("stability: no other segmentation to compare with (train again)")
        else:
            lines.append(
                f"stability vs {self.against}: adjusted Rand index {self.ari:.4f} on "
                f"{self.profiles} profiles (1 = same segments, 0 = chance)"
            )
        if self.seed_stability is not None:
            lines.append(f"stability across k-means seeds at training: {self.seed_stability}")
        if chart:
            lines.append(f"chart: {chart}")
        return "\n".join(lines)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index between two share vectors."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, 1e-4), max(a, 1e-4)
        total += (a - e) * math.log(a / e)
    return total


def _shares(sizes: Sequence[int | float]) -> tuple[float, ...]:
    total = float(sum(sizes)) or 1.0
    return tuple(float(s) / total for s in sizes)


async def _previous(registry: ModelRegistry, version: str) -> str | None:
    versions = [info.version for info in await registry.list(SEGMENTS_MODEL)]
    later = versions.index(version) if version in versions else -1
    older = versions[later + 1 :] if later >= 0 else versions
    return older[0] if older else None


async def segment_report(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    *,
    now: datetime,
    against: str | None = None,
    record: bool = True,
) -> SegmentReport:
    """The active segmentation's report (see the module docstring); records a history point."""
    active = await registry.load_active(SEGMENTS_MODEL)
    if active is None or not isinstance(active.estimator, Segmentation):
        raise ModelNotFound("no segmentation is active: run `python -m gateway segments train`")
    seg: Segmentation = active.estimator
    profiles = await load_profiles(database)
    rows_raw = seg.rows(profiles, now)
    members, distances = seg.nearest(rows_raw) if profiles else (np.zeros(0, int), np.zeros(0))
    sizes = np.bincount(members, minlength=seg.k) if profiles else np.zeros(seg.k, dtype=int)
    spread = [float(distances[members == s].mean()) if sizes[s] else 0.0 for s in range(seg.k)]
    holding = [
        sum(
            1
            for p in profiles
            if isinstance(p.get("segment"), dict)
            and p["segment"].get("version") == active.version
            and p["segment"].get("id") == s
        )
        for s in range(seg.k)
    ]
    shares = _shares([int(s) for s in sizes])
    training = _shares(seg.sizes)
    values = seg.centroid_values()
    rows = [
        SegmentRow(
            id=s,
            label=seg.labels[s],
            size=int(sizes[s]),
            share=shares[s],
            training_share=training[s],
            holding=holding[s],
            spread=spread[s],
            training_spread=seg.spread[s] if s < len(seg.spread) else 0.0,
            centroid_z=dict(zip(seg.features, (float(v) for v in seg.centroids[s]), strict=True)),
            centroid=dict(zip(seg.features, (float(v) for v in values[s]), strict=True)),
        )
        for s in range(seg.k)
    ]
    if record and profiles:
        await record_snapshot(
            database,
            active.version,
            at=now,
            sizes=[int(s) for s in sizes],
            distances=[round(d, 4) for d in spread],
        )
    cursor = (
        database[collections.SEGMENT_HISTORY]
        .find({"version": active.version})
        .sort("at", -1)
        .limit(HISTORY_POINTS)
    )
    history = [
        Point(doc["at"], _shares(doc.get("sizes") or []), bool(doc.get("training")))
        async for doc in cursor
    ]
    history.reverse()
    report = SegmentReport(
        version=active.version,
        k=seg.k,
        profiles=len(profiles),
        rows=rows,
        psi=psi(training, shares) if profiles else 0.0,
        history=history,
        silhouettes=dict(seg.silhouettes),
        seed_stability=seg.seed_stability,
        generated_at=now,
    )
    other = against or await _previous(registry, active.version)
    if other is not None and other != active.version and profiles:
        loaded = await registry.load(other)
        if not isinstance(loaded.estimator, Segmentation):
            raise ModelNotFound(f"{other} is not a segmentation")
        theirs, _ = loaded.estimator.nearest(loaded.estimator.rows(profiles, now))
        report.against = other
        report.ari = float(adjusted_rand_score(members, theirs))
    return report


# -- the chart -----------------------------------------------------------------------------

_W = 860
_LABEL = 260
_ROW = 26
_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1b9e77",
    "#7570b3",
)


def _sizes(report: SegmentReport) -> tuple[str, int]:
    most = max([0.01, *(r.share for r in report.rows), *(r.training_share for r in report.rows)])
    plot = _W - _LABEL - 120
    parts = ['<text x="8" y="18" class="h">Share of profiles: now (bar) vs training (tick)</text>']
    for index, row in enumerate(report.rows):
        y = 44 + index * _ROW
        colour = _COLOURS[index % len(_COLOURS)]
        parts.append(f'<text x="8" y="{y + 4}">{html.escape(f"{row.id} {row.label}")}</text>')
        parts.append(
            f'<rect x="{_LABEL}" y="{y - 8}" width="{plot * row.share / most:.1f}" height="16" '
            f'fill="{colour}"/>'
        )
        tick = _LABEL + plot * row.training_share / most
        parts.append(
            f'<line x1="{tick:.1f}" y1="{y - 12}" x2="{tick:.1f}" y2="{y + 12}" class="tick"/>'
        )
        parts.append(
            f'<text x="{_W - 8}" y="{y + 4}" class="val">'
            f"{row.size:,} ({row.share:.1%} / {row.training_share:.1%})</text>"
        )
    return "\n".join(parts), 44 + _ROW * len(report.rows)


def _over_time(report: SegmentReport, top: int) -> tuple[str, int]:
    height = 180
    parts = [f'<text x="8" y="{top + 18}" class="h">Shares over time</text>']
    points = report.history
    if len(points) < 2:
        parts.append(
            f'<text x="8" y="{top + 44}">one point so far: run the report again later</text>'
        )
        return "\n".join(parts), top + 60
    left, right = 60, _W - 20
    y0, y1 = top + 30, top + 30 + height
    most = max([0.01, *(s for p in points for s in p.shares)])
    first, last = points[0].at, points[-1].at
    span = max((last - first).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return left + (right - left) * (moment - first).total_seconds() / span

    def y(share: float) -> float:
        return y1 - (y1 - y0) * share / most

    parts.append(f'<line x1="{left}" y1="{y1}" x2="{right}" y2="{y1}" class="axis"/>')
    parts.append(f'<text x="8" y="{y0 + 4}">{most:.0%}</text>')
    parts.append(f'<text x="{left}" y="{y1 + 16}">{first:%Y-%m-%d}</text>')
    parts.append(f'<text x="{right}" y="{y1 + 16}" class="val">{last:%Y-%m-%d %H:%M}</text>')
    for segment in range(report.k):
        coords = " ".join(
            f"{x(p.at):.1f},{y(p.shares[segment] if segment < len(p.shares) else 0):.1f}"
            for p in points
        )
        colour = _COLOURS[segment % len(_COLOURS)]
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
    return "\n".join(parts), y1 + 30


def _heat(report: SegmentReport, top: int) -> tuple[str, int]:
    if not report.rows:
        return "", top
    features = list(report.rows[0].centroid_z)
    # Room on the right for the last column's label, slanted up and to the right.
    cell = max(18, min(48, (_W - _LABEL - 90) // max(1, len(features))))
    title = "Centroids (z-scores: blue below, red above the average visitor)"
    parts = [f'<text x="8" y="{top + 18}" class="h">{title}</text>']
    for index, name in enumerate(features):
        x = _LABEL + index * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top + 110}" transform="rotate(-60 {x:.1f} {top + 110})" '
            f'class="feat">{html.escape(name)}</text>'
        )
    for row_index, row in enumerate(report.rows):
        y = top + 120 + row_index * 22
        parts.append(f'<text x="8" y="{y + 14}">{html.escape(f"{row.id} {row.label}")}</text>')
        for index, name in enumerate(features):
            z = max(-2.5, min(2.5, row.centroid_z[name]))
            red, blue = (int(255 * z / 2.5), 0) if z > 0 else (0, int(255 * -z / 2.5))
            fill = f"rgb({255 - blue},{255 - red - blue},{255 - red})"
            parts.append(
                f'<rect x="{_LABEL + index * cell}" y="{y}" width="{cell - 1}" height="20" '
                f'fill="{fill}"><title>{html.escape(name)} {row.centroid_z[name]:+.2f}'
                "</title></rect>"
            )
    return "\n".join(parts), top + 130 + 22 * len(report.rows)


def chart_html(report: SegmentReport) -> str:
    """The report's chart as one self-contained HTML page."""
    sizes, height = _sizes(report)
    time_chart, height = _over_time(report, height)
    heat, height = _heat(report, height)
    title = html.escape(f"Segments {report.version}")
    stability = (
        "no other segmentation to compare"
        if report.ari is None
        else f"adjusted Rand index vs {report.against}: {report.ari:.3f}"
    )
    generated = f"{report.generated_at:%Y-%m-%d %H:%M} UTC" if report.generated_at else ""
    note = html.escape(
        f"k = {report.k} · {report.profiles:,} profiles · PSI since training {report.psi:.3f}"
        f"{' (drifted)' if report.drifted else ''} · {stability} · generated {generated}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }} p {{ margin: 0 0 12px; color: #555; }}
svg text {{ font-size: 12px; fill: #222; }} svg .h {{ font-weight: 600; }}
svg .val {{ text-anchor: end; }} svg .tick {{ stroke: #222; stroke-width: 2; }}
svg .axis {{ stroke: #999; }} svg .feat {{ font-size: 11px; }}
</style></head>
<body><h1>{title}</h1><p>{note}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height + 10}" role="img"
 aria-label="Segment sizes, shares over time and centroids">
{sizes}
{time_chart}
{heat}
</svg>
<p>Each report run adds a point to the history. Shares far from training (PSI above
{PSI_ALERT}) or members far from their centroid (spread above {SPREAD_ALERT}x training) mean the
segments no longer describe today's visitors: train again.</p>
</body></html>
"""
