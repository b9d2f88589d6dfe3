"""Train a segmentation from the profiles, register it, and (re)assign every profile.

`segments train` fits on every live profile (merge stubs are not visitors),
saves the segmentation signed in the registry (kind `segments`) and, with
`--activate`, writes each profile's `segment`. Writing bumps the profile's
`version`, so a concurrent ingestion (a version-checked replace) retries on
top of it instead of erasing it; profiles whose segment did not change are
not written. Activating another version or rolling back rewrites them the
same way (`assign_profiles`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from common import collections
from scoring.registry import SEGMENTS_MODEL, ModelRegistry
from scoring.segments.model import Segmentation, fit_segmentation
from scoring.segments.serving import segment_document

_BATCH = 1000
#: What segment features read from a profile.
PROJECTION = {
    "traits": 1,
    "cart.items": 1,
    "interests": 1,
    "decay": 1,
    "segment": 1,
    "version": 1,
}


def _live() -> dict[str, Any]:
    return {"mergedInto": {"$exists": False}, "mergingInto": {"$exists": False}}


async def load_profiles(database: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every live profile, with the fields segments read."""
    cursor = database[collections.PROFILES].find(_live(), PROJECTION)
    return [doc async for doc in cursor]


@dataclass(slots=True)
class SegmentTraining:
    """What `segments train` fitted and wrote."""

    segmentation: Segmentation
    profiles: int
    version: str | None = None
    activated: bool = False
    assigned: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """What the registry stores with the segmentation."""
        seg = self.segmentation
        return {
            "k": seg.k,
            "profiles": self.profiles,
            "silhouette": seg.silhouettes.get(seg.k),
            "silhouettes": {str(k): v for k, v in seg.silhouettes.items()},
            "labels": list(seg.labels),
            "sizes": list(seg.sizes),
            "seedStability": seg.seed_stability,
        }

    def format(self) -> str:
        """A summary for people."""
        seg = self.segmentation
        tried = ", ".join(f"k={k} {s:.3f}" for k, s in sorted(seg.silhouettes.items()))
        lines = [
            f"segments {self.version}{' (active)' if self.activated else ''}",
            f"  {self.profiles} profiles, k = {seg.k} by silhouette ({tried})",
            f"  stability across k-means seeds: adjusted Rand index {seg.seed_stability}",
            f"  {'id':>3} {'size':>7} {'share':>6}  label",
        ]
        total = sum(seg.sizes) or 1
        for segment, (label, size) in enumerate(zip(seg.labels, seg.sizes, strict=True)):
            lines.append(f"  {segment:>3} {size:>7} {size / total:6.1%}  {label}")
        if self.activated:
            written = self.assigned.get("written", 0)
            lines.append(f"  assigned every profile ({written} written, the rest unchanged)")
        return "\n".join(lines)


async def assign_profiles(
    database: AsyncDatabase[dict[str, Any]],
    segmentation: Segmentation | None,
    version: str | None,
    *,
    now: datetime,
) -> dict[str, int]:
    """Write every live profile's segment under `segmentation` (None: remove it)."""
    profiles = await load_profiles(database)
    counts: Counter[str] = Counter()
    requests: list[UpdateOne] = []
    members: list[int] = []
    if segmentation is not None and profiles:
        found, _ = await asyncio.to_thread(segmentation.nearest, segmentation.rows(profiles, now))
        members = [int(m) for m in found]
    for position, profile in enumerate(profiles):
        if segmentation is None or version is None:
            if "segment" not in profile:
                counts["unchanged"] += 1
                continue
            update: dict[str, Any] = {"$unset": {"segment": ""}, "$inc": {"version": 1}}
        else:
            wanted = segment_document(segmentation, version, members[position])
            if profile.get("segment") == wanted:
                counts["unchanged"] += 1
                continue
            update = {"$set": {"segment": wanted}, "$inc": {"version": 1}}
        requests.append(UpdateOne({"_id": profile["_id"]}, update))
        counts["written"] += 1
        if len(requests) >= _BATCH:
            await database[collections.PROFILES].bulk_write(requests, ordered=False)
            requests = []
    if requests:
        await database[collections.PROFILES].bulk_write(requests, ordered=False)
    return dict(counts)


async def train_segments(
    database: AsyncDatabase[dict[str, Any]],
    registry: ModelRegistry,
    *,
    k_values: list[int],
    now: datetime,
    seed: int = 0,
    activate: bool = False,
) -> SegmentTraining:
    """Fit on every live profile, register (kind `segments`), activate and assign if asked."""
    profiles = await load_profiles(database)
    segmentation = await asyncio.to_thread(
        fit_segmentation, profiles, now=now, k_values=k_values, seed=seed
    )
    result = SegmentTraining(segmentation, len(profiles))
    info = await registry.save(
        segmentation,
        kind=SEGMENTS_MODEL,
        metrics=result.metrics(),
        features=segmentation.features,
        window={"until": now, "profiles": len(profiles), "kRange": [min(k_values), max(k_values)]},
        now=now,
    )
    result.version = info.version
    await record_snapshot(
        database,
        info.version,
        at=now,
        sizes=list(segmentation.sizes),
        distances=list(segmentation.spread),
        training=True,
    )
    if activate:
        await registry.activate(info.version)
        result.activated = True
        result.assigned = await assign_profiles(database, segmentation, info.version, now=now)
    return result


async def record_snapshot(
    database: AsyncDatabase[dict[str, Any]],
    version: str,
    *,
    at: datetime,
    sizes: list[int],
    distances: list[float],
    training: bool = False,
) -> None:
    """Keep a point of a segmentation's drift over time (sizes and spread, no visitor)."""
    await database[collections.SEGMENT_HISTORY].insert_one(
        {
            "version": version,
            "at": at,
            "sizes": sizes,
            "distances": distances,
            "training": training,
        }
    )
