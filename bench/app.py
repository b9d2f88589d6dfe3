"""The Tessera app plus the baseline routes the benchmark compares it with.

Serve it with `python -m uvicorn bench.app:create_bench_app --factory`; settings
come from the environment (`MONGODB_URI`, ...) as for the real gateway. The
added routes share the gateway's lifespan, so they use its MongoDB client:

- `PUT /bench/payload` stores the body every baseline route returns (the runner
  sends the exact bytes of one GraphQL page response);
- `GET /bench/static` returns that payload, pre-serialized (scenario b);
- `GET /bench/profile` reads the `X-Visitor-Id` profile, then returns the
  payload (scenario c);
- `POST /bench/memory` takes a tracemalloc snapshot as the baseline and
  `GET /bench/memory` lists the allocation sites that grew most since then
  (only when the process traces allocations: `PYTHONTRACEMALLOC=1`);
- `GET /bench/stats` reports how many profile reads fell back to the
  unpersonalized page, so the runner can tell whether (a) stayed personalized,
  the profile reads by outcome (db, near-cache, stale, fallback), the
  near-cache's size, the page response cache's hits and misses, and how many
  page exposures were logged, dropped and held back.
"""

from __future__ import annotations

import gc
import tracemalloc

from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from blocks import templating
from common.gc_tuning import tune_gc
from delivery.services import Services
from gateway.app import create_app
from gateway.settings import Settings


def _payload(request: Request) -> bytes:
    payload: bytes | None = getattr(request.app.state, "bench_payload", None)
    if payload is None:
        raise RuntimeError("PUT /bench/payload before requesting a baseline route")
    return payload


async def store_payload(request: Request) -> Response:
    """Keep the request body as the payload of the baseline routes."""
    request.app.state.bench_payload = await request.body()
    return Response(status_code=204)


async def static(request: Request) -> Response:
    """Scenario (b): the pre-serialized page, no I/O."""
    return Response(content=_payload(request), media_type="application/json")


async def profile(request: Request) -> Response:
    """Scenario (c): one profile read through the gateway's client, then the page."""
    visitor_id = request.headers.get("x-visitor-id")
    if visitor_id is None:
        return PlainTextResponse("X-Visitor-Id is required", status_code=400)
    services: Services = request.app.state.services
    document = await services.store.collection.find_one({"_id": visitor_id})
    if document is None:
        return PlainTextResponse(f"no profile {visitor_id!r}", status_code=404)
    return Response(content=_payload(request), media_type="application/json")


async def memory(request: Request) -> Response:
    """tracemalloc: POST keeps a baseline snapshot, GET the sites that grew since."""
    if not tracemalloc.is_tracing():
        return PlainTextResponse("start the gateway with PYTHONTRACEMALLOC=1", status_code=409)
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    if request.method == "POST":
        request.app.state.bench_memory = snapshot
        return Response(status_code=204)
    baseline: tracemalloc.Snapshot | None = getattr(request.app.state, "bench_memory", None)
    if baseline is None:
        return PlainTextResponse("POST /bench/memory first", status_code=409)
    top = snapshot.compare_to(baseline, "lineno")[:25]
    traced, _ = tracemalloc.get_traced_memory()
    return JSONResponse(
        {
            "traced_bytes": traced,
            "growth": [
                {"site": str(stat.traceback), "bytes": stat.size_diff, "count": stat.count_diff}
                for stat in top
            ],
        }
    )


def _counter(name: str, **labels: str) -> int:
    return int(REGISTRY.get_sample_value(name, labels) or 0)


async def stats(request: Request) -> Response:
    """Counters of the gateway's profile reader and exposure log."""
    services: Services = request.app.state.services
    reader = services.profiles
    near_cache = reader.near_cache
    page_cache = request.app.state.response_cache
    return JSONResponse(
        {
            "fallbacks": reader.fallbacks,
            # Templated fields that fell back to their plain text (e.g. past the time budget).
            "template_failures": templating.STATS.failures,
            "incidents": reader.incidents,
            "reads": dict(reader.outcomes),
            "near_cache": {
                "entries": len(near_cache) if near_cache is not None else 0,
                "bytes": near_cache.bytes if near_cache is not None else 0,
                "feed_healthy": reader.feed.healthy if reader.feed is not None else None,
                "feed_restarts": reader.feed.restarts if reader.feed is not None else 0,
                "feed_changes": reader.feed.changes if reader.feed is not None else 0,
            },
            "page_cache": {
                "hits": page_cache.hits if page_cache is not None else 0,
                "misses": page_cache.misses if page_cache is not None else 0,
                "entries": len(page_cache) if page_cache is not None else 0,
                "capacity": page_cache.maxsize if page_cache is not None else 0,
            },
            "exposures": {
                "logged": _counter("tessera_exposures_logged_total"),
                "dropped": sum(
                    _counter("tessera_exposures_dropped_total", cause=cause)
                    for cause in ("queue_full", "error", "closed")
                ),
                "deferred": _counter("tessera_exposure_writes_deferred_total"),
                "queued": services.exposures.pending if services.exposures is not None else 0,
            },
        }
    )


def create_bench_app() -> Starlette:
    """The gateway built from the environment, with the `/bench/*` routes added."""
    app = create_app(Settings())
    tune_gc()  # as `serve` does: the benchmarks measure what production runs
    app.router.routes.extend(
        [
            Route("/bench/payload", store_payload, methods=["PUT"]),
            Route("/bench/static", static),
            Route("/bench/profile", profile),
            Route("/bench/stats", stats),
            Route("/bench/memory", memory, methods=["GET", "POST"]),
        ]
    )
    return app
