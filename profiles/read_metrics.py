"""Profile read metrics: how each page's profile was obtained, and how long it took.

Every budgeted read ends in one outcome:

- `db`: read from MongoDB within the budget;
- `near-cache`: served from the in-process near-cache, no round trip;
- `stale`: a near-cache copy served because the database read missed its budget;
- `fallback`: no profile at all (timeout, error, breaker open): the page is unpersonalized.

The counter carries every outcome from the start (at zero), so a dashboard can
divide `fallback` by the total before the first fallback happens.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Histogram

ReadOutcome = Literal["db", "near-cache", "stale", "fallback"]
OUTCOMES: Final[tuple[ReadOutcome, ...]] = ("db", "near-cache", "stale", "fallback")

PROFILE_READS = Counter(
    "tessera_profile_reads",
    "Budgeted profile reads by outcome: db (MongoDB within budget), near-cache "
    "(in-process copy), stale (a near-cache copy after a missed budget), "
    "fallback (no profile: page served unpersonalized).",
    ["outcome"],
)
PROFILE_READ_SECONDS = Histogram(
    "tessera_profile_read_seconds",
    "Time a page waited for its visitor's profile, by outcome.",
    ["outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
#: Every outcome's series, created at import (so each shows 0) and looked up once.
_SERIES = {
    outcome: (PROFILE_READS.labels(outcome), PROFILE_READ_SECONDS.labels(outcome))
    for outcome in OUTCOMES
}


def record_read(outcome: ReadOutcome, seconds: float) -> None:
    """Count one profile read and its latency."""
    count, latency = _SERIES[outcome]
    count.inc()
    latency.observe(seconds)
