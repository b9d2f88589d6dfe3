"""The purge APIs the sinks talk to: recorded-style Fastly and Cloudflare, and a real varnishd.

`FakeFastly` and `FakeCloudflare` answer through httpx.MockTransport exactly
the requests their APIs document, with their documented bodies:

- Fastly, batch purge by surrogate key (`POST /service/{service_id}/purge`,
  `Fastly-Key`, `Surrogate-Key: k1 k2`, at most 256 keys; optional
  `Fastly-Soft-Purge: 1`) answers `200 {"k1": "<purge id>", …}`; errors are
  `{"msg": …, "detail": …}` (401 for a bad token, 400 over 256 keys).
- Cloudflare, purge cached content by tag (`POST /client/v4/zones/{zone_id}/purge_cache`,
  `Authorization: Bearer`, JSON `{"tags": […]}`, at most 30 tags) answers
  `200 {"success": true, "errors": [], "messages": [], "result": {"id": …}}`;
  errors are `{"success": false, "errors": [{"code": …, "message": …}], …}`
  (10000 Authentication error on 403, 971 when throttled on 429).

Every edge, fake or real, sits behind an `InjectingTransport` that answers
queued canned failures (in the edge's own error shape) before the real
handler, and logs every request, so one behaviour suite covers every sink.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

FASTLY_SERVICE = "SU1Z0isxPaozGVKXdv0eY"
FASTLY_TOKEN = "fastly-token-" + "x" * 20
CLOUDFLARE_ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
CLOUDFLARE_TOKEN = "cloudflare-token-" + "y" * 24


@dataclass
class Canned:
    """A failure answered instead of the edge: a response, or a connection error (status 0)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class InjectingTransport(httpx.AsyncBaseTransport):
    """Logs every request; answers queued failures first, then passes to the real edge."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures: list[Canned] = []
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        await request.aread()
        self.requests.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if failure.status == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(
                failure.status,
                content=json.dumps(failure.body).encode(),
                headers={"content-type": "application/json", **failure.headers},
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()


def _json(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class FakeFastly:
    """Fastly's API for batch surrogate-key purges."""

    def __init__(self) -> None:
        self.purged: list[str] = []
        self.soft: list[bool] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer as api.fastly.com does."""
        if request.headers.get("fastly-key") != FASTLY_TOKEN:
            return _json(401, {"msg": "Provided credentials are missing or invalid"})
        if request.method != "POST" or request.url.path != f"/service/{FASTLY_SERVICE}/purge":
            return _json(404, {"msg": "Record not found", "detail": "Cannot find service"})
        keys = request.headers.get("surrogate-key", "").split()
        if not keys:
            return _json(400, {"msg": "Bad request", "detail": "No surrogate keys given"})
        if len(keys) > 256:
            return _json(400, {"msg": "Bad request", "detail": "Too many surrogate keys"})
        self.purged += keys
        self.soft.append(request.headers.get("fastly-soft-purge") == "1")
        return _json(200, {key: f"108-1391560174-{uuid.uuid4().int % 10**6}" for key in keys})

    @staticmethod
    def failure(kind: str, retry_after: float = 1.0) -> Canned:
        """Fastly's documented error answers."""
        return {
            "unavailable": Canned(503, {"msg": "Service Unavailable", "detail": "try again"}),
            "unauthorized": Canned(401, {"msg": "Provided credentials are missing or invalid"}),
            "rate_limited": Canned(
                429,
                {"msg": "Too many requests", "detail": "Rate limit exceeded"},
                {"Retry-After": str(retry_after)},
            ),
            "connect": Canned(0),
        }[kind]


class FakeCloudflare:
    """Cloudflare's API v4, purge cached content by cache tag."""

    def __init__(self) -> None:
        self.purged: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer as api.cloudflare.com does."""
        if request.headers.get("authorization") != f"Bearer {CLOUDFLARE_TOKEN}":
            return _failure(403, 10000, "Authentication error")
        expected = f"/client/v4/zones/{CLOUDFLARE_ZONE}/purge_cache"
        if request.method != "POST" or request.url.path != expected:
            return _failure(
                404, 7003, "Could not route to /zones, perhaps your object identifier is invalid?"
            )
        try:
            body = json.loads(request.content)
        except ValueError:
            return _failure(400, 6007, "Malformed JSON in request body")
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list) or not tags or set(body) != {"tags"}:
            return _failure(
                400,
                1012,
                'Request must contain one of "purge_everything", "files", "tags", '
                '"hosts" or "prefixes"',
            )
        if len(tags) > 30:
            return _failure(400, 1114, "Too many tags: the maximum is 30 per request")
        self.purged += [str(tag) for tag in tags]
        return _json(
            200, {"success": True, "errors": [], "messages": [], "result": {"id": uuid.uuid4().hex}}
        )

    @staticmethod
    def failure(kind: str, retry_after: float = 1.0) -> Canned:
        """Cloudflare's documented error answers."""

        def body(code: int, message: str) -> dict[str, Any]:
            return {
                "success": False,
                "errors": [{"code": code, "message": message}],
                "messages": [],
                "result": None,
            }

        return {
            "unavailable": Canned(502, body(10043, "Internal error")),
            "unauthorized": Canned(403, body(10000, "Authentication error")),
            "rate_limited": Canned(
                429,
                body(971, "Please wait and consider throttling your request speed"),
                {"Retry-After": str(int(retry_after))},
            ),
            "connect": Canned(0),
        }[kind]


def _failure(status: int, code: int, message: str) -> httpx.Response:
    return _json(
        status,
        {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        },
    )


def varnish_failure(kind: str, retry_after: float = 1.0) -> Canned:
    """What deploy/varnish/tessera.vcl (or varnishd itself) answers when a purge fails."""
    return {
        "unavailable": Canned(503, {"error": "Backend fetch failed"}),
        "unauthorized": Canned(403, {"error": "Forbidden"}),
        "rate_limited": Canned(
            429, {"error": "Too Many Requests"}, {"Retry-After": str(retry_after)}
        ),
        "connect": Canned(0),
    }[kind]


FailureFactory = Callable[[str, float], Canned]
