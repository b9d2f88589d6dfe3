"""Event ingestion metrics, in prometheus_client's default registry (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_REFUSED = Counter(
    "tessera_events_refused",
    "Events refused: cause=unstorable (not encodable as BSON), database (the server "
    "refused the document) or id_taken (the event id is another visitor's event), each "
    "reported to its client as a problem; or answered 503 with "
    "their request: stalled (waited on a commit the database stopped answering), "
    "unavailable (refused at once while the database is down or a commit is stalled), "
    "outage (their commit failed: the database is unreachable), shutdown (still queued "
    "when the gateway stopped).",
    ["cause"],
)
EVENT_COMMIT_SPLITS = Counter(
    "tessera_event_commit_splits",
    "Group commits that failed for an unexpected reason and were retried in halves, "
    "so that only the offending request fails.",
)
EVENT_APPLY_FAILURES = Counter(
    "tessera_event_apply_failures",
    "Profile updates that failed after their events were stored (reconciliation retries them), "
    "by exception class.",
    ["error"],
)
EVENT_RECONCILE_FAILURES = Counter(
    "tessera_event_reconcile_failures",
    "Failed reconciliations of a stored commit, or of a whole round, by exception class; "
    "the reconciler keeps running.",
    ["error"],
)
STICKY_BUCKETS_WRITTEN = Counter(
    "tessera_sticky_buckets_written",
    "Sticky bucket documents (a visitor's experiment assignments) saved in profiles.",
)
STICKY_BUCKETS_DROPPED = Counter(
    "tessera_sticky_buckets_dropped",
    "Sticky bucket documents not saved: cause=queue_full, error or closed (the visitor is "
    "assigned again by hash on their next page, the same arm unless the weights changed).",
    ["cause"],
)
