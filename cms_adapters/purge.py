"""Purge sinks: hand surrogate keys to edge caches (Varnish xkey, Fastly, Cloudflare).

PurgeError               any failure to purge an edge cache
├── PurgeRejected        the edge refused the request (4xx): sending it again cannot help
│   └── PurgeUnauthorized   it refused our credentials (401/403)
└── PurgeUnavailable     unreachable, timed out, 5xx: retried, then raised
    └── PurgeRateLimited    429 (`retry_after` seconds, when the edge says)

Each sink is an adapter: one coroutine, `purge(keys)`, plus `aclose()` and
`async with`. The HTTP sinks (`VarnishPurgeSink`, `FastlyPurgeSink`,
`CloudflarePurgeSink`) share `HttpPurgeSink`: one httpx client, keys
deduplicated and split into batches the edge accepts, each request retried
`retries` more times with exponential backoff (`backoff * 2**attempt`) or as
long as a 429's `Retry-After` asks, up to `max_wait`, and every request,
retry, failure and purged key counted in Prometheus (`tessera_purge_*`).
Vendor errors become the exceptions above at this boundary; their messages
carry the vendor's words and never a credential. `FanOutPurgeSink` sends the
same keys to several sinks at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import httpx
from prometheus_client import Counter, Histogram

from cms_adapters.http import retry_after

logger = logging.getLogger(__name__)


class PurgeError(Exception):
    """Base of every purge failure; names the sink and, when known, the edge host."""

    def __init__(self, sink: str, message: str, *, target: str = "") -> None:
        super().__init__(f"{sink} purge" + (f" at {target}" if target else "") + f": {message}")
        self.sink = sink
        self.target = target
        self.message = message


class PurgeRejected(PurgeError):
    """The edge refused the purge request; retrying the same request cannot help."""


class PurgeUnauthorized(PurgeRejected):
    """The edge refused our credentials (or, for Varnish, our address)."""


class PurgeUnavailable(PurgeError):
    """The edge could not be reached, timed out or failed on its side."""


class PurgeRateLimited(PurgeUnavailable):
    """The edge asked us to slow down; retry after `retry_after` seconds if known."""

    def __init__(
        self, sink: str, message: str, *, target: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(sink, message, target=target)
        self.retry_after = retry_after


PURGE_REQUESTS = Counter(
    "tessera_purge_requests",
    "HTTP purge requests sent to edge caches, retries included, by sink and result "
    "(ok, rejected, unavailable, rate_limited).",
    ["sink", "result"],
)
PURGE_RETRIES = Counter(
    "tessera_purge_retries", "Purge requests sent again after a failure.", ["sink"]
)
PURGE_FAILURES = Counter(
    "tessera_purge_failures",
    "Purge requests given up: refused by the edge, or still failing after every retry.",
    ["sink", "reason"],
)
PURGE_KEYS = Counter(
    "tessera_purge_keys", "Surrogate keys an edge cache confirmed purging.", ["sink"]
)
PURGE_SECONDS = Histogram(
    "tessera_purge_seconds",
    "Time to purge one set of keys from one sink, retries included.",
    ["sink"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

Sleep = Callable[[float], Awaitable[None]]


class PurgeSink(Protocol):
    """Where surrogate keys go to be purged from an edge cache."""

    async def purge(self, keys: Sequence[str]) -> None:
        """Purge every cached response tagged with one of `keys`; raises PurgeError."""

    async def aclose(self) -> None:
        """Release the sink's connections."""

    async def __aenter__(self) -> Self:
        """Enter `async with`: the sink itself."""

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Leave `async with`: `aclose()`."""


class SinkBase:
    """`async with` for sinks: closes the sink on the way out."""

    async def aclose(self) -> None:
        """Release the sink's connections (nothing to release here)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class LoggingPurgeSink(SinkBase):
    """The default sink: logs the keys (no edge cache configured)."""

    def __init__(self) -> None:
        self.purged: list[list[str]] = []

    async def purge(self, keys: Sequence[str]) -> None:
        """Log and remember the keys."""
        self.purged.append(list(keys))
        logger.info("purge surrogate keys: %s", " ".join(keys))


@dataclass(frozen=True)
class PurgeRequest:
    """One HTTP request to send (again, when retried) for a batch of keys."""

    method: str
    url: str
    target: str
    headers: Mapping[str, str]
    json: Any = None


class HttpPurgeSink(SinkBase):
    """Base of the HTTP sinks: batching, bounded retries, translated errors, metrics."""

    #: The `sink` label of the metrics, and the name in error messages.
    name: ClassVar[str] = "http"
    #: Most keys one request may carry.
    max_keys: ClassVar[int] = 100

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 2.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_wait: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = httpx.AsyncClient(
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep

    @property
    def closed(self) -> bool:
        """Whether `aclose()` has run."""
        return self.client.is_closed

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def batches(self, keys: Sequence[str]) -> Iterator[list[str]]:
        """Split keys into groups of at most `max_keys`."""
        for start in range(0, len(keys), self.max_keys):
            yield list(keys[start : start + self.max_keys])

    def requests(self, batch: list[str]) -> list[PurgeRequest]:
        """The requests that purge one batch (one per edge host)."""
        raise NotImplementedError

    def check(self, request: PurgeRequest, response: httpx.Response) -> None:
        """Raise PurgeRejected when a 2xx answer still says the purge failed."""

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's own words about a failed request."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:200].strip() or response.reason_phrase
        if isinstance(body, dict):
            for name in ("msg", "error", "message", "detail"):
                if isinstance(body.get(name), str):
                    return str(body[name])
        return response.reason_phrase

    async def purge(self, keys: Sequence[str]) -> None:
        """Purge `keys` (deduplicated, batched); raises PurgeError if any request failed."""
        unique = list(dict.fromkeys(key for key in keys if key))
        if not unique:
            return
        started = time.perf_counter()
        batches = list(self.batches(unique))
        outcomes = await asyncio.gather(
            *(self._purge_batch(batch) for batch in batches), return_exceptions=True
        )
        PURGE_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        failures: list[PurgeError] = []
        for outcome in outcomes:
            if isinstance(outcome, PurgeError):
                failures.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if failures:
            raise _combined(self.name, failures)

    async def _purge_batch(self, batch: list[str]) -> None:
        outcomes = await asyncio.gather(
            *(self._send(request) for request in self.requests(batch)), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if not failures:
            PURGE_KEYS.labels(self.name).inc(len(batch))
            return
        for failure in failures:
            if not isinstance(failure, PurgeError):
                raise failure
        raise _combined(self.name, [f for f in failures if isinstance(f, PurgeError)])

    async def _send(self, request: PurgeRequest) -> httpx.Response:
        attempt = 0
        while True:
            failure = await self._attempt(request)
            if isinstance(failure, httpx.Response):
                return failure
            if isinstance(failure, PurgeRejected):
                PURGE_FAILURES.labels(self.name, "rejected").inc()
                raise failure
            wait = failure.retry_after if isinstance(failure, PurgeRateLimited) else None
            delay = self.backoff * 2**attempt if wait is None else wait
            if attempt >= self.retries or delay > self.max_wait:
                PURGE_FAILURES.labels(self.name, "unavailable").inc()
                raise failure
            attempt += 1
            PURGE_RETRIES.labels(self.name).inc()
            logger.info("%s; retrying in %.2f s", failure, delay)
            await self._sleep(delay)

    async def _attempt(self, request: PurgeRequest) -> httpx.Response | PurgeError:
        """Send once: the response when it succeeded, else the error it amounts to."""
        try:
            response = await self.client.request(
                request.method, request.url, headers=request.headers, json=request.json
            )
        except httpx.TimeoutException:
            PURGE_REQUESTS.labels(self.name, "unavailable").inc()
            return PurgeUnavailable(self.name, "request timed out", target=request.target)
        except httpx.TransportError as exc:
            PURGE_REQUESTS.labels(self.name, "unavailable").inc()
            reason = type(exc).__name__
            return PurgeUnavailable(self.name, f"cannot connect ({reason})", target=request.target)
        status = response.status_code
        if status < 300:
            try:
                self.check(request, response)
            except PurgeRejected as exc:
                PURGE_REQUESTS.labels(self.name, "rejected").inc()
                return exc
            PURGE_REQUESTS.labels(self.name, "ok").inc()
            return response
        message = f"HTTP {status}: {self.error_message(response)}"
        if status == 429:
            PURGE_REQUESTS.labels(self.name, "rate_limited").inc()
            return PurgeRateLimited(
                self.name, message, target=request.target, retry_after=retry_after(response)
            )
        if status >= 500:
            PURGE_REQUESTS.labels(self.name, "unavailable").inc()
            return PurgeUnavailable(self.name, message, target=request.target)
        PURGE_REQUESTS.labels(self.name, "rejected").inc()
        if status in (401, 403):
            return PurgeUnauthorized(self.name, message, target=request.target)
        return PurgeRejected(self.name, message, target=request.target)


def _combined(sink: str, failures: list[PurgeError]) -> PurgeError:
    """One error standing for several: unavailable if any was, so callers may retry."""
    if len(failures) == 1:
        return failures[0]
    kind = (
        PurgeUnavailable
        if any(isinstance(f, PurgeUnavailable) for f in failures)
        else (PurgeRejected)
    )
    details = "; ".join(str(failure) for failure in failures)
    return kind(sink, f"{len(failures)} requests failed: {details}")


class VarnishPurgeSink(HttpPurgeSink):
    """`PURGE /` with an `xkey-purge` header to every Varnish host (deploy/varnish/default.vcl)."""

    name = "varnish"
    #: Keys go in one header, which Varnish caps at 8 KiB (http_req_hdr_len).
    max_header_bytes = 4000

    def __init__(self, urls: Sequence[str], **options: Any) -> None:
        if not urls:
            raise ValueError("VARNISH_URLS: at least one Varnish URL is required")
        super().__init__(**options)
        self.urls = [url.rstrip("/") for url in urls]

    def batches(self, keys: Sequence[str]) -> Iterator[list[str]]:
        """Groups of keys whose space-separated list fits one request header."""
        batch: list[str] = []
        size = 0
        for key in keys:
            if batch and size + 1 + len(key) > self.max_header_bytes:
                yield batch
                batch, size = [], 0
            batch.append(key)
            size += len(key) + (1 if size else 0)
        if batch:
            yield batch

    def requests(self, batch: list[str]) -> list[PurgeRequest]:
        """One PURGE per Varnish host."""
        header = {"xkey-purge": " ".join(batch)}
        return [PurgeRequest("PURGE", f"{url}/", url, header) for url in self.urls]

    def check(self, request: PurgeRequest, response: httpx.Response) -> None:
        """Log how many objects the host dropped (the VCL answers `{"purged": n}`)."""
        logger.debug("%s purged %s objects", request.target, response.headers.get("x-purged"))


class FastlyPurgeSink(HttpPurgeSink):
    """Fastly's batch surrogate-key purge: `POST /service/{id}/purge` with `Surrogate-Key`."""

    name = "fastly"
    max_keys = 256  # Fastly's limit per batch purge

    def __init__(
        self,
        service_id: str,
        token: str,
        *,
        soft: bool = False,
        api_url: str = "https://api.fastly.com",
        **options: Any,
    ) -> None:
        if not service_id or not token:
            raise ValueError("FASTLY_SERVICE_ID and FASTLY_API_TOKEN are both required")
        headers = {"Fastly-Key": token, "Accept": "application/json"}
        if soft:
            headers["Fastly-Soft-Purge"] = "1"
        super().__init__(headers=headers, **options)
        self.url = f"{api_url.rstrip('/')}/service/{service_id}/purge"

    def requests(self, batch: list[str]) -> list[PurgeRequest]:
        """One request per batch."""
        return [PurgeRequest("POST", self.url, "api", {"Surrogate-Key": " ".join(batch)})]

    def check(self, request: PurgeRequest, response: httpx.Response) -> None:
        """Fastly answers a map of key to purge id."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PurgeRejected(self.name, "unexpected answer", target=request.target)


class CloudflarePurgeSink(HttpPurgeSink):
    """Cloudflare's purge by cache tag: `POST /zones/{zone}/purge_cache` with `{"tags": […]}`."""

    name = "cloudflare"
    max_keys = 30  # tags per purge request on every plan

    def __init__(
        self,
        zone_id: str,
        token: str,
        *,
        api_url: str = "https://api.cloudflare.com/client/v4",
        **options: Any,
    ) -> None:
        if not zone_id or not token:
            raise ValueError("CLOUDFLARE_ZONE_ID and CLOUDFLARE_API_TOKEN are both required")
        super().__init__(headers={"Authorization": f"Bearer {token}"}, **options)
        self.url = f"{api_url.rstrip('/')}/zones/{zone_id}/purge_cache"

    def requests(self, batch: list[str]) -> list[PurgeRequest]:
        """One request per batch."""
        return [PurgeRequest("POST", self.url, "api", {}, json={"tags": batch})]

    def error_message(self, response: httpx.Response) -> str:
        """Cloudflare's `errors[0]`: its code and message."""
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        return _cloudflare_errors(body) or super().error_message(response)

    def check(self, request: PurgeRequest, response: httpx.Response) -> None:
        """A 200 still needs `"success": true`."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("success") is not True:
            reason = _cloudflare_errors(body) or "success is not true"
            raise PurgeRejected(self.name, reason, target=request.target)


def _cloudflare_errors(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        if isinstance(first, dict):
            return f"{first.get('code', '?')} {first.get('message', '')}".strip()
    return ""


class FanOutPurgeSink(SinkBase):
    """Send the same keys to several sinks at once; one failing does not stop the others."""

    def __init__(self, sinks: Sequence[PurgeSink]) -> None:
        self.sinks = list(sinks)

    async def purge(self, keys: Sequence[str]) -> None:
        """Purge from every sink; raises PurgeError naming those that failed."""
        outcomes = await asyncio.gather(
            *(sink.purge(keys) for sink in self.sinks), return_exceptions=True
        )
        failures: list[PurgeError] = []
        for outcome in outcomes:
            if isinstance(outcome, PurgeError):
                failures.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if failures:
            raise _combined("edge", failures)

    async def aclose(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            await sink.aclose()
