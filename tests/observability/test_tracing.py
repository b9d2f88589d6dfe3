"""Optional OpenTelemetry tracing: spans from the real app, and a clear error without the extra."""

from __future__ import annotations

import http.server
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from cms_adapters.strapi import StrapiAdapter
from gateway.app import create_app
from gateway.cli import main
from gateway.embedded_mongo import EmbeddedMongo, free_port
from gateway.settings import Settings
from gateway.tracing import INSTALL_HINT, TracingUnavailable
from tests.cms.vendors import FakeStrapi
from tests.graphql_helpers import PAGE_QUERY
from tests.observability.helpers import gateway

PAGE = {"query": PAGE_QUERY, "variables": {"slug": "home"}, "operationName": "Page"}


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this module's apps, kept in memory (the SDK's own test exporter)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    # Process-wide hooks: the rest of the session runs untraced.
    PymongoInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    exporter.shutdown()


@pytest.fixture
def exporter(spans: InMemorySpanExporter) -> InMemorySpanExporter:
    spans.clear()
    return spans


def server_span(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    servers = [s for s in finished if s.kind == SpanKind.SERVER and s.name == name]
    assert len(servers) == 1, [s.name for s in finished]
    return servers[0]


def descends_from(
    span: ReadableSpan, ancestor: ReadableSpan, by_id: dict[int, ReadableSpan]
) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


async def test_a_page_request_is_a_server_span_with_its_mongodb_reads_inside(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    async with gateway(settings, otel_traces_enabled=True) as client:
        response = await client.post(
            "/graphql",
            json=PAGE,
            headers={"X-Visitor-Id": "demo-vip", "X-Request-Id": "trace-me-1"},
        )
        assert response.status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    finished = exporter.get_finished_spans()
    request = server_span(finished, "POST /graphql")
    attributes = dict(request.attributes or {})
    assert attributes["http.route"] == "/graphql"
    assert attributes["graphql.operation.name"] == "Page"
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["tessera.request_id"] == "trace-me-1"
    by_id = {s.context.span_id: s for s in finished}
    reads = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and s.name == f"{settings.mongodb_database}.find"
        and descends_from(s, request, by_id)
    ]
    assert reads, [s.name for s in finished]
    # Statements stay out of spans: no visitor id, no filter.
    for span in reads:
        assert "demo-vip" not in str(dict(span.attributes or {}))
    # Probes are not traced.
    assert not any(s.name.endswith("/healthz") for s in finished)


class StrapiOverHTTP(http.server.ThreadingHTTPServer):
    """The Strapi fake behind a real socket, so the CMS call goes through httpx's transport."""

    def __init__(self, vendor: FakeStrapi) -> None:
        self.vendor = vendor
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                request = httpx.Request(
                    "GET", f"http://strapi.test{self.path}", headers=dict(self.headers.items())
                )
                answer = server.vendor.answer(request)
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "text/plain"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def strapi() -> Iterator[str]:
    server = StrapiOverHTTP(FakeStrapi())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_cms_calls_are_client_spans_inside_the_request(
    settings: Settings, exporter: InMemorySpanExporter, strapi: str
) -> None:
    adapter = StrapiAdapter(strapi, "strapi-token", webhook_secret="s" * 32)
    async with gateway(settings, adapter=adapter, cms="strapi", otel_traces_enabled=True) as client:
        response = await client.post("/graphql", json=PAGE, headers={"X-Visitor-Id": "cms-v"})
        assert response.json()["data"]["page"]["slug"] == "home"
    finished = exporter.get_finished_spans()
    request = server_span(finished, "POST /graphql")
    by_id = {s.context.span_id: s for s in finished}
    # The page fetches (the catalogue read at start-up belongs to no request).
    calls = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and s.name == "GET"
        and "/api/pages" in str(s.attributes.get("url.full") or s.attributes.get("http.url"))
    ]
    assert calls, [(s.name, s.attributes) for s in finished]
    assert all(descends_from(s, request, by_id) for s in calls)


def test_tracing_is_on_with_an_endpoint_or_when_asked() -> None:
    assert Settings().tracing_enabled is False
    assert Settings(otel_exporter_otlp_endpoint="http://collector:4318").tracing_enabled is True
    off = Settings(otel_exporter_otlp_endpoint="http://collector:4318", otel_traces_enabled=False)
    assert off.tracing_enabled is False
    assert Settings(otel_traces_enabled=True).tracing_enabled is True


def test_without_the_extra_asking_for_tracing_stops_start_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an install without `[otel]` looks like to Python: the import fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.asgi", None)
    with pytest.raises(TracingUnavailable, match=r"tessera-gateway\[otel\]"):
        create_app(settings.model_copy(update={"otel_traces_enabled": True}))
    # Not asked for: nothing is imported, the app builds.
    create_app(settings)


def test_serve_without_the_extra_says_what_to_install(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.asgi", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.invalid:4318")
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri.get_secret_value())  # type: ignore[union-attr]
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        assert main(["serve"]) == 2
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
    error = capsys.readouterr().err
    assert INSTALL_HINT in error
    assert "Traceback" not in error


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP collector that only records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.received.append((self.path, self.headers["content-type"], body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.mark.slow
def test_serve_exports_spans_over_otlp_http(
    mongo_server: EmbeddedMongo, database_name: str, tmp_path: Path
) -> None:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOG_"))}
    env |= {
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DATABASE": database_name,
        "STATE_DIR": str(tmp_path / "state"),
        "PORT": str(port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "OTEL_SERVICE_NAME": "tessera-under-test",
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        response = httpx.post(f"{url}/graphql", json=PAGE, timeout=10)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)
        collector.shutdown()
        collector.server_close()
    # The batch left at exit is flushed: the request's span reached the collector.
    assert collector.received, log.read_text()
    paths = {path for path, _, _ in collector.received}
    assert paths == {"/v1/traces"}
    assert all(kind == "application/x-protobuf" for _, kind, _ in collector.received)
    sent = b"".join(body for _, _, body in collector.received)
    assert b"POST /graphql" in sent
    assert b"tessera-under-test" in sent
