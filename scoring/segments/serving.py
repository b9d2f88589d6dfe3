"""Assign profiles to the active segmentation as ingestion writes them, hot-reloaded.

`SegmentServer` is a `ModelServer` of kind `segments` (polling, signature
check, refusal of bad versions). Ingestion calls `annotate` on every profile
it is about to write: the nearest centroid of the active segmentation is
written as `segment: {id, label, version}`. With no segmentation loaded the
profile keeps what it has (`segments rollback` rewrites every profile).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from scoring.registry import SEGMENTS_MODEL, ModelRegistry
from scoring.segments.model import Segmentation
from scoring.serving import ModelServer

logger = logging.getLogger(__name__)


def segment_document(segmentation: Segmentation, version: str, segment: int) -> dict[str, Any]:
    """What a profile stores: `{id, label, version}`."""
    return {"id": segment, "label": segmentation.labels[segment], "version": version}


class SegmentServer(ModelServer):
    """The active segmentation, for ingestion and previews."""

    def __init__(self, registry: ModelRegistry, *, poll_seconds: float) -> None:
        super().__init__(
            registry, budget=1.0, poll_seconds=poll_seconds, kind=SEGMENTS_MODEL, workers=1
        )
        self._failed: str | None = None

    @property
    def segmentation(self) -> Segmentation | None:
        """The segmentation serving now, if any."""
        model = self.model
        estimator = None if model is None else model.estimator
        return estimator if isinstance(estimator, Segmentation) else None

    def annotate(self, profile: dict[str, Any], now: datetime) -> None:
        """Write the profile's segment (nearest centroid) into it; never raises."""
        segmentation, version = self.segmentation, self.version
        if segmentation is None or version is None:
            return
        try:
            segment, _ = segmentation.assign(profile, now)
        except Exception as exc:  # a broken artifact must not fail ingestion
            if self._failed != version:
                logger.error("segments %s could not assign a profile: %r", version, exc)
            self._failed = version
            return
        profile["segment"] = segment_document(segmentation, version, segment)

    def find(self, name: str) -> dict[str, Any] | None:
        """The segment a preview names (its label or id), as a profile would hold it."""
        segmentation, version = self.segmentation, self.version
        if segmentation is None or version is None:
            return None
        for segment, label in enumerate(segmentation.labels):
            if name in (label, str(segment)):
                return segment_document(segmentation, version, segment)
        return None

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels of the active segmentation (empty without one)."""
        segmentation = self.segmentation
        return () if segmentation is None else segmentation.labels
