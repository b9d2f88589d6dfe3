"""Every MongoDB collection Tessera uses, named once."""

from __future__ import annotations

from typing import Final

#: One document per visitor: traits, interests, cart, consent (profiles/traits.py).
PROFILES: Final = "profiles"
#: Raw events, journaled and deduplicated by event id (TTL: EVENT_RETENTION_DAYS).
EVENTS: Final = "events"
#: Group commits whose events are stored but not yet applied to every profile.
PENDING: Final = "pending_commits"
#: Every consent change, kept for audits.
CONSENT_LOG: Final = "consent_log"
#: GDPR erasures: when, and how many documents each collection lost.
AUDIT: Final = "audit"
#: Known user ids and the profile each one merged into.
IDENTITIES: Final = "identities"
#: Named targeting conditions editors reference.
AUDIENCES: Final = "audiences"
#: One document per page view: the decisions served (TTL: EXPOSURE_RETENTION_DAYS).
EXPOSURES: Final = "exposures"
#: Publish webhooks' invalidations, for processes that share no Redis (TTL: an hour).
INVALIDATIONS: Final = "invalidations"
#: GridFS bucket of signed model artifacts, and the registry's bookkeeping beside it.
MODELS_BUCKET: Final = "models"
MODEL_REGISTRY: Final = "models.registry"
MODEL_STATE: Final = "models.state"
MODEL_SAMPLES: Final = "models.samples"
MODEL_DRIFT: Final = "models.drift"
#: Points of each segmentation's drift over time: segment sizes and spread, no visitor ids.
SEGMENT_HISTORY: Final = "segments.history"
