"""The per-request GraphQL context and the shared services injected into it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import Response

from blocks.experiments import Allocation
from blocks.rendering import BlockRenderer
from cms_adapters.content_cache import ContentCache
from gateway.auth import KeyRing, Principal
from profiles.audiences import AudienceCatalog
from profiles.ingest import Ingestor
from profiles.reader import BudgetedProfileReader
from profiles.sticky import StickyBucketWriter
from profiles.store import ProfileStore
from scoring.exposures import ExposureLog
from scoring.serving import ModelServer

if TYPE_CHECKING:
    from resolvers.assembly import RequestReads


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
    # -- experiments (issue 14) --
    #: Site-wide experiment settings (the global holdout).
    allocation: Allocation = field(default_factory=Allocation)
    #: Saves visitors' experiment assignments (sticky buckets) in their profiles.
    sticky: StickyBucketWriter | None = None


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


@dataclass(slots=True)
class GraphQLContext:
    """What every resolver receives as `info.context`."""

    request: HTTPConnection
    response: Response | None
    services: Services
    visitor: VisitorIdentity
    #: This request's profile reads and page decisions, each done once.
    reads: RequestReads
    principal: Principal | None = None
