"""Optional OpenTelemetry tracing, behind the `otel` extra.

Off unless `OTEL_TRACES_ENABLED=true`, or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
(and `OTEL_TRACES_ENABLED` is not `false`). When on, each HTTP request is a
server span named after its route template (`POST /graphql`); MongoDB
commands (without their documents: `capture_statement` stays off) and CMS
HTTP calls are child spans, and the GraphQL operation's name and type are
attributes of the request's span. Spans go over OTLP/HTTP to
`<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces` in batches; the exporter reads
the standard `OTEL_*` variables (`OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_HEADERS`, ...), and the service is `tessera-gateway`
unless `OTEL_SERVICE_NAME` says otherwise.

If the process already installed an SDK tracer provider (the
`opentelemetry-instrument` launcher does, and so do the tests, with an
in-memory exporter), Tessera uses it instead of making its own.

Spans still batched when the app shuts down are exported before it reports
shutdown (at most 5 s). Tracing requested without the extra installed stops start-up with
`TracingUnavailable`, which names the package to install.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import REQUEST_ID
from gateway.settings import Settings

SERVICE_NAME = "tessera-gateway"
#: Probes and scrapes are frequent and say nothing about a request's path through Tessera.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"
INSTALL_HINT = "pip install 'tessera-gateway[otel]'"


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the OpenTelemetry packages are not installed."""


#: `opentelemetry.trace` once an app enabled tracing (annotations cost nothing before).
_trace_api: Any = None

SpanDetails = Callable[[Scope], tuple[str, dict[str, str]]]


def require_tracing(settings: Settings) -> None:
    """Raise `TracingUnavailable` if tracing is asked for and the `otel` extra is missing."""
    if not settings.tracing_enabled:
        return
    try:
        import opentelemetry.instrumentation.asgi
        import opentelemetry.instrumentation.httpx
        import opentelemetry.instrumentation.pymongo
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise TracingUnavailable(
            "OTEL_TRACES_ENABLED/OTEL_EXPORTER_OTLP_ENDPOINT ask for tracing, but the "
            f"OpenTelemetry packages are not installed ({exc.name or exc}): {INSTALL_HINT}"
        ) from None


def tracing_middleware(settings: Settings, span_details: SpanDetails) -> list[Middleware]:
    """The ASGI tracing middleware when tracing is on (instrumenting pymongo and httpx too).

    `span_details` names a request's span and gives its first attributes.
    """
    global _trace_api
    if not settings.tracing_enabled:
        return []
    require_tracing(settings)
    from opentelemetry import trace
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    _trace_api = trace
    provider = tracer_provider(settings)
    # Both register process-wide hooks; instrumenting twice (a second app) is a no-op.
    if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
        PymongoInstrumentor().instrument(tracer_provider=provider)
    if not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry:
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return [
        Middleware(FlushOnShutdown, provider=provider),
        Middleware(
            OpenTelemetryMiddleware,
            excluded_urls=EXCLUDED_URLS,
            default_span_details=span_details,
            server_request_hook=_tag_request_id,
            tracer_provider=provider,
            exclude_spans=["receive", "send"],
        ),
    ]


def tracer_provider(settings: Settings) -> Any:
    """The process's SDK tracer provider, made (with an OTLP/HTTP exporter) if there is none."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces" if endpoint else None)
    # Batched, off the request path; the SDK flushes what is left at interpreter exit.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


class FlushOnShutdown:
    """ASGI middleware: export the spans still batched before the server reports shutdown.

    uvicorn re-raises SIGTERM once the app has shut down, so the SDK's own
    flush at interpreter exit never runs; the last requests' spans would be lost.
    """

    def __init__(self, app: ASGIApp, provider: Any, timeout_ms: int = 5000) -> None:
        self.app = app
        self.provider = provider
        self.timeout_ms = timeout_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def flushing_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                # Bounded: a collector that does not answer delays shutdown by timeout_ms.
                await asyncio.to_thread(self.provider.force_flush, self.timeout_ms)
            await send(message)

        await self.app(scope, receive, flushing_send)


def _tag_request_id(span: Any, scope: Scope) -> None:
    request_id = REQUEST_ID.get()
    if request_id is not None and span.is_recording():
        span.set_attribute("tessera.request_id", request_id)


def annotate_operation(name: str, operation_type: str) -> None:
    """Name the GraphQL operation on the current request's span (when tracing is on)."""
    if _trace_api is None:
        return
    span = _trace_api.get_current_span()
    if span.is_recording():
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.operation.type", operation_type)
