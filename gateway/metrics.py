"""The `/metrics` endpoint: every counter Tessera keeps, in Prometheus text format.

Scoring, exposure and latency metrics live in prometheus_client's default
registry (`scoring.metrics`, `profiles.read_metrics`, `delivery.metrics`,
`common.mongo_metrics`, `cms_adapters.metrics`, `gateway.observability`);
the counters other packages keep as plain objects (the content cache,
malformed conditions, failed templates, the page response cache, the profile
reader's circuit breaker) are read at scrape time by a per-app collector, so
creating several apps in one process (as tests do) never registers a metric
twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

# Imported for its side effect: the scoring metrics join the default registry.
import scoring.metrics  # noqa: F401
from blocks import conditions, templating
from delivery.services import Services
from gateway.response_cache import ResponseCache


class GatewayCollector(Collector):
    """Reads the plain counters of one running app at scrape time."""

    def __init__(self, services: Services, page_cache: ResponseCache | None) -> None:
        self._services = services
        self._page_cache = page_cache

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per counter."""
        yield _counter(
            "tessera_conditions_malformed",
            "Evaluations of a malformed targeting condition (each counted as false).",
            conditions.STATS.malformed,
        )
        yield _counter(
            "tessera_conditions_errors",
            "Evaluations of a valid condition that failed unexpectedly.",
            conditions.STATS.errors,
        )
        yield _counter(
            "tessera_template_failures",
            "Editor templates that failed to render and fell back to plain text.",
            templating.STATS.failures,
        )
        if self._page_cache is not None:
            yield _counter(
                "tessera_page_cache_hits",
                "Page responses served from the response cache.",
                self._page_cache.hits,
            )
            yield _counter(
                "tessera_page_cache_misses",
                "Page responses produced by GraphQL execution.",
                self._page_cache.misses,
            )
        breaker = GaugeMetricFamily(
            "tessera_profile_reader_degraded",
            "1 while profile reads are failing and pages are served unpersonalized.",
        )
        breaker.add_metric([], 0.0 if self._services.profiles.healthy else 1.0)
        yield breaker


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def metrics_endpoint(
    cms: str, page_cache: ResponseCache | None
) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` route handler for an app whose services open in its lifespan."""
    registries: dict[int, CollectorRegistry] = {}

    async def metrics(request: Request) -> Response:
        services: Services = request.state.services
        # One collector per services object: a restarted lifespan gets a fresh one.
        registry = registries.get(id(services))
        if registry is None:
            registries.clear()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(GatewayCollector(services, page_cache))
            registries[id(services)] = registry
        body = (
            generate_latest(prometheus_client.REGISTRY)
            + generate_latest(registry)
            + services.content.metrics.prometheus(cms).encode()
        )
        return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    return metrics
