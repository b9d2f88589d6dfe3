"""Request telemetry: a request id, and request durations per route and per GraphQL operation.

`RequestTelemetry` is the outermost ASGI middleware. For each HTTP request it

- takes the client's `X-Request-Id` when it is a plausible id (1-128
  characters of `A-Z a-z 0-9 . _ : + / = @ -`), else generates one, so a
  hostile header can neither inject text into log lines nor grow them;
- sets it in `gateway.logs.REQUEST_ID` for every log record emitted while
  the request is handled, and echoes it as the `X-Request-Id` response header;
- observes the request's duration (until the last body byte is handed to the
  server) in `tessera_http_request_duration_seconds{route,method,status}`,
  where `route` is the matched route's template (`/webhooks/{cms}`, never the
  raw path) or `unmatched`, and `method` is a standard method or `other`.

`/graphql` durations are also observed per operation, by the endpoint itself
(`OperationTimer`): the operation name is chosen by the client, so the label
set is bounded. The first `METRICS_OPERATION_NAMES` distinct names a process
executes are kept; later new names count as `other`. A name is only
considered once it names an operation of a parsed document (so it is a
GraphQL name, at most 64 characters here). Operations without a name are
`anonymous`; requests refused before an operation was chosen (bad JSON, an
unknown persisted query, GraphiQL's page) are `none`. Why first-N rather
than a fixed list: Tessera has no list of its clients' operations unless
persisted queries are `trusted` (then every executed name is in the
manifest anyway, and the first N are exactly the manifest's), and an
operator wants their real operations visible without configuration; the
cost is that a flood of invented names right after a restart can fill the
set, which then shows as a large `other` series, visible and bounded.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from prometheus_client import Histogram
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.logs import REQUEST_ID
from gateway.settings import Settings
from gateway.tracing import annotate_operation, tracing_middleware

REQUEST_ID_HEADER: Final = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=@-]{1,128}")
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: GraphQL names are `[_A-Za-z][_0-9A-Za-z]*`; longer ones are not kept as labels.
_MAX_OPERATION_NAME: Final = 64
UNMATCHED: Final = "unmatched"

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_SECONDS = Histogram(
    "tessera_http_request_duration_seconds",
    "HTTP request duration by route template, method and status code.",
    ["route", "method", "status"],
    buckets=_DURATION_BUCKETS,
)
GRAPHQL_OPERATION_SECONDS = Histogram(
    "tessera_graphql_operation_duration_seconds",
    "/graphql request duration by operation name (the first METRICS_OPERATION_NAMES "
    "names seen, then other; anonymous; none when no operation was chosen) and type.",
    ["operation", "type"],
    buckets=_DURATION_BUCKETS,
)


def accept_request_id(value: str | None) -> str:
    """The client's request id when it is a safe, bounded token, else a new one."""
    if value is not None and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return os.urandom(16).hex()


def route_template(scope: Scope) -> str:
    """The template of the route the request matches (`/webhooks/{cms}`), or `unmatched`."""
    routes: Sequence[BaseRoute] = getattr(scope.get("app"), "routes", ())
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", UNMATCHED))
        if match == Match.PARTIAL and partial is None:
            partial = route  # the path matches, the method does not (a 405)
    return str(getattr(partial, "path", UNMATCHED))


def method_label(method: str) -> str:
    """A standard method, or `other` (the method is client-chosen text)."""
    return method if method in _METHODS else "other"


class RequestTelemetry:
    """ASGI middleware: request id in, request id out, duration observed (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Both bounded: paths of routes without parameters, and label tuples of known routes.
        self._static: dict[str, str] | None = None
        self._series: dict[tuple[str, str, int], Any] = {}

    def _route(self, scope: Scope) -> str:
        if self._static is None:
            routes: Sequence[BaseRoute] = getattr(scope.get("app"), "routes", ())
            self._static = {
                path: path
                for path in (getattr(route, "path", None) for route in routes)
                if isinstance(path, str) and "{" not in path
            }
        if not scope.get("root_path"):
            static = self._static.get(scope["path"])
            if static is not None:
                return static
        return route_template(scope)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        key = (self._route(scope), method_label(scope["method"]), status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = HTTP_REQUEST_SECONDS.labels(key[0], key[1], str(status))
        series.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                header = value.decode("latin-1")
                break
        request_id = accept_request_id(header)
        echoed = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        token = REQUEST_ID.set(request_id)
        status = 500  # what the client sees if nothing else answers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)


class OperationNames:
    """The bounded set of GraphQL operation names used as labels (first N seen)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        """`name` if it is (or can still become) one of the kept names, else `other`."""
        if name is None:
            return "anonymous"
        if len(name) > _MAX_OPERATION_NAME:
            return "other"
        if name in self._kept:
            return name
        with self._lock:
            if len(self._kept) < self.limit:
                self._kept.add(name)
                return name
        return "other"


class OperationTimer:
    """Times one `/graphql` request; the endpoint names the operation once it is chosen."""

    def __init__(self, names: OperationNames) -> None:
        self._names = names
        self._started = time.perf_counter()
        self.operation = "none"
        self.type = "none"

    def chose(self, name: str | None, operation_type: str) -> None:
        """The request runs the operation `name` (None: anonymous) of `operation_type`."""
        self.operation = self._names.label(name)
        self.type = operation_type
        annotate_operation(self.operation, operation_type)

    def observe(self) -> None:
        """Record the duration so far under the chosen operation."""
        GRAPHQL_OPERATION_SECONDS.labels(self.operation, self.type).observe(
            time.perf_counter() - self._started
        )


def span_details(scope: Scope) -> tuple[str, dict[str, str]]:
    """A request span's name (`POST /graphql`) and route attribute: templates, never raw paths."""
    route = route_template(scope)
    return f"{method_label(scope.get('method', ''))} {route}", {"http.route": route}


def telemetry_middleware(settings: Settings) -> list[Middleware]:
    """The outermost middleware: request ids and durations, then tracing when enabled."""
    return [Middleware(RequestTelemetry), *tracing_middleware(settings, span_details)]
