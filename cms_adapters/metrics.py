"""CMS latency as a Prometheus histogram: one observation per page fetched from the CMS.

`ContentCache.metrics` already keeps plain counters and a summary of recent
upstream latencies per process; this histogram adds what a summary cannot:
buckets that aggregate across replicas, split by outcome.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Histogram

FetchOutcome = Literal["ok", "not_found", "error"]

CMS_FETCH_SECONDS = Histogram(
    "tessera_cms_fetch_seconds",
    "Time to fetch one page from the CMS adapter (retries included), by CMS and outcome "
    "(ok, not_found, error).",
    ["cms", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe_fetch(cms: str, outcome: FetchOutcome, seconds: float) -> None:
    """Record one CMS page fetch."""
    CMS_FETCH_SECONDS.labels(cms, outcome).observe(seconds)
