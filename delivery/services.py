"""The shared services container, and who is asking."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from blocks.experiments import Allocation
from blocks.rendering import BlockRenderer
from cms_adapters.content_cache import ContentCache
from delivery.auth import KeyRing
from delivery.edge_keys import EdgeKeys
from delivery.experiment_registry import ExperimentRegistry
from delivery.recommendations import Recommendations
from profiles.audiences import AudienceCatalog
from profiles.ingest import Ingestor
from profiles.reader import BudgetedProfileReader
from profiles.sticky import StickyBucketWriter
from profiles.store import ProfileStore
from scoring.exposures import ExposureLog
from scoring.segments.serving import SegmentServer
from scoring.serving import ModelServer


@dataclass(slots=True)
class Services:
    """Shared clients and stores, opened once in the app lifespan."""

    content: ContentCache
    profiles: BudgetedProfileReader
    store: ProfileStore
    audiences: AudienceCatalog
    clock: Callable[[], datetime]
    keys: KeyRing = field(default_factory=KeyRing)
    ingestor: Ingestor | None = None
    ingest_limits: IngestLimits = field(default_factory=lambda: IngestLimits())
    renderer: BlockRenderer = field(default_factory=BlockRenderer)
    scorer: ModelServer | None = None
    exposures: ExposureLog | None = None
    rng: random.Random = field(default_factory=random.Random)
    exploration_epsilon: float = 0.1
    cold_start_epsilon: float = 0.0
    default_analytics_consent: bool = True
    #: Signs the facts `audience` pages are keyed on at the edge; None: never `audience`.
    edge_keys: EdgeKeys | None = None
    # -- experiments (issue 14) --
    #: Site-wide experiment settings (the global holdout).
    allocation: Allocation = field(default_factory=Allocation)
    #: Saves visitors' experiment assignments (sticky buckets) in their profiles.
    sticky: StickyBucketWriter | None = None
    #: The experiments the published pages run, whose arms edge keys cover.
    experiments: ExperimentRegistry = field(default_factory=ExperimentRegistry)
    # -- segments and recommendations (issue 15) --
    #: The active segmentation: assigns profiles at ingestion, names segments for previews.
    segments: SegmentServer | None = None
    #: What recommendations blocks are filled from (model, catalogue, trending).
    recommendations: Recommendations | None = None


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on what one ingestion request may carry."""

    max_body_bytes: int = 1_048_576
    max_events: int = 500
    max_skew_seconds: float = 86_400.0


@dataclass(frozen=True, slots=True)
class VisitorIdentity:
    """Who is asking: the visitor id and where it came from."""

    id: str
    source: str  # "header", "cookie" or "new"

    @property
    def is_new(self) -> bool:
        """Whether Tessera just minted this id."""
        return self.source == "new"
