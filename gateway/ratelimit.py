"""Rate limits: a token bucket per client IP and per API key, for each route family.

`/graphql`, `/v1/events` and `/webhooks/{cms}` each have their own budgets
(`RATE_LIMIT_*`); `/healthz`, `/readyz` and `/metrics` are never limited. A
request takes one token from its client IP's bucket and, when it presents a
valid API key, one from that key's bucket: both or neither, so a refused
request costs nothing. Over either budget it gets `429` with `Retry-After`.

The buckets are GCRA (the generic cell rate algorithm), which is a token
bucket stored as one number per bucket: the time at which the bucket would be
full again. In memory by default; with `CACHE_URL=redis://...` in Redis, where
one Lua script checks and takes every bucket of a request atomically on the
Redis server's clock, so all replicas share one budget. When Redis fails the
request is never refused for it: each replica falls back to its own in-memory
buckets (a looser limit, N replicas allow N times the budget), logs the
outage once and counts each failure, and tries Redis again a second later.

Why not the `limits` package: it offers fixed, moving and sliding windows but
no token bucket with its own burst; `hit()` answers a bool, so `Retry-After`
and the remaining count need a second, non-atomic round trip; it checks one
limit per call, so the IP and key budgets could not be taken both-or-neither;
and its async Redis storage defaults to a second Redis client (coredis). GCRA
is one short script on the redis-py client Tessera already has.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qs

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery.auth import KeyRing, bearer_token
from gateway.client_ip import (
    ClientAddress,
    IPAddress,
    IPNetwork,
    bucket_name,
    parse_networks,
)

if TYPE_CHECKING:
    from gateway.settings import Settings


class RateLimitError(Exception):
    """Base of the rate limiter's errors."""


class BucketStoreUnavailable(RateLimitError):
    """The shared bucket store (Redis) did not answer; the caller decides without it."""


logger = logging.getLogger(__name__)

Family = Literal["graphql", "events", "webhooks"]
BudgetScope = Literal["ip", "key"]

RATE_LIMITED = Counter(
    "tessera_rate_limited",
    "Requests refused with 429, by route family and by the budget that ran out (ip or key).",
    ["route", "scope"],
)
BACKEND_ERRORS = Counter(
    "tessera_rate_limit_backend_errors",
    "Rate-limit checks Redis failed to answer; each was decided by the replica's own buckets.",
)
BACKEND_DEGRADED = Gauge(
    "tessera_rate_limit_degraded",
    "1 while the shared (Redis) rate-limit store is unavailable and each replica limits alone.",
)

# How long a replica decides alone after a Redis failure before it tries Redis again,
# so an outage costs one failed round trip per second, not one per request.
REDIS_RETRY_SECONDS = 1.0
# A rate-limit check must never hold a request for long: past this Redis counts as down.
REDIS_TIMEOUT_SECONDS = 0.25
KEY_PREFIX = "tessera:ratelimit:"
# Where a load balancer or reverse proxy of our own sits: loopback, RFC 1918, shared
# address space (cloud load balancers), unique-local and link-local IPv6.
_PROXY_RANGES = parse_networks(
    "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,::1/128,fc00::/7,fe80::/10",
    setting="proxy ranges",
)


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: `rate` tokens per second refill it, up to `burst` tokens."""

    rate: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds for one token to refill."""
        return 1.0 / self.rate


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget a request draws on: whose it is and its limit."""

    name: str
    scope: BudgetScope
    limit: Limit


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: allowed or not, and the bucket that decided it.

    When allowed, `bucket` is the one with the fewest tokens left; when refused,
    the one that needs the longest wait.
    """

    allowed: bool
    bucket: Bucket
    remaining: int
    retry_after: float  # seconds until the request would be allowed (0 when it is)
    reset: float  # seconds until the bucket is full again


class BucketStore(Protocol):
    """Where bucket states live: `acquire` takes one token from every bucket, or none."""

    async def acquire(self, buckets: Sequence[Bucket]) -> Verdict:
        """Take a token from each of `buckets` if all have one; say which decided."""
        ...


# A whole token, give or take the float error of subtracting two large times.
_EPSILON = 1e-9


class MemoryBuckets:
    """Buckets in this process, on a monotonic clock; bounded in size."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        # Bucket name -> theoretical arrival time: when the bucket would be full again.
        self._full_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._full_at)

    async def acquire(self, buckets: Sequence[Bucket]) -> Verdict:
        """Take a token from each of `buckets` if all have one (no I/O)."""
        return self.take(buckets)

    def take(self, buckets: Sequence[Bucket]) -> Verdict:
        """The synchronous `acquire`."""
        now = self._clock()
        planned: list[tuple[Bucket, float]] = []
        refused: Verdict | None = None
        allowed: Verdict | None = None
        for bucket in buckets:
            limit = bucket.limit
            full_at = max(self._full_at.get(bucket.name, now), now)
            after = full_at + limit.interval
            allow_at = after - limit.interval * limit.burst
            if allow_at > now + _EPSILON:
                wait = allow_at - now
                if refused is None or wait > refused.retry_after:
                    refused = Verdict(False, bucket, 0, wait, full_at - now)
                continue
            remaining = math.floor((now - allow_at) / limit.interval + _EPSILON)
            if allowed is None or remaining < allowed.remaining:
                allowed = Verdict(True, bucket, remaining, 0.0, after - now)
            planned.append((bucket, after))
        if refused is not None:
            return refused
        assert allowed is not None, "a check has at least one bucket"
        for bucket, after in planned:
            # Re-inserted at the end: the dict's order is least recently used first.
            self._full_at.pop(bucket.name, None)
            self._full_at[bucket.name] = after
        if len(self._full_at) > self._max_entries:
            self._shrink(now)
        return allowed

    def _shrink(self, now: float) -> None:
        """Forget full buckets, then the least recently used, down to half the bound.

        Half, so the next sweep is max_entries/2 new buckets away: a flood of
        new addresses costs O(1) per request, not a sweep each.
        """
        self._full_at = {name: at for name, at in self._full_at.items() if at > now}
        excess = len(self._full_at) - self._max_entries // 2
        for name in list(self._full_at)[: max(excess, 0)]:
            del self._full_at[name]


# KEYS: bucket keys; ARGV: each bucket's refill interval (microseconds) and burst.
# Returns {allowed, index of the deciding bucket, remaining, retry-after us, reset us}.
# Redis's own clock is the clock of every replica; all keys are checked before any
# is written, and a script runs atomically, so concurrent replicas never overspend.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local planned = {}
local refused, refused_wait, refused_reset = 0, -1, 0
local tightest, tightest_left, tightest_reset = 0, math.huge, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local full_at = tonumber(redis.call('GET', KEYS[i])) or now
  if full_at < now then full_at = now end
  local after = full_at + interval
  local allow_at = after - interval * burst
  if allow_at > now then
    if allow_at - now > refused_wait then
      refused, refused_wait, refused_reset = i, allow_at - now, full_at - now
    end
  else
    local left = math.floor((now - allow_at) / interval + 1e-9)
    if left < tightest_left then
      tightest, tightest_left, tightest_reset = i, left, after - now
    end
    planned[i] = after
  end
end
if refused > 0 then
  return {0, refused, 0, math.ceil(refused_wait), math.ceil(refused_reset)}
end
for i = 1, #KEYS do
  -- At least 1 ms: at huge rates `after` rounds to `now` (doubles near 1.8e15 us).
  local ttl = math.max(1, math.ceil((planned[i] - now) / 1000))
  redis.call('SET', KEYS[i], string.format('%.3f', planned[i]), 'PX', ttl)
end
return {1, tightest, tightest_left, 0, math.ceil(tightest_reset)}
"""


class RedisBuckets:
    """Buckets in Redis, shared by every replica that uses the same server."""

    def __init__(self, url: str, *, timeout: float = REDIS_TIMEOUT_SECONDS) -> None:
        # No retries: a failed check is decided locally at once, never after a backoff.
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_GCRA_LUA)

    async def acquire(self, buckets: Sequence[Bucket]) -> Verdict:
        """Take a token from each of `buckets` if all have one, in one atomic script."""
        args: list[float] = []
        for bucket in buckets:
            args += [bucket.limit.interval * 1_000_000, bucket.limit.burst]
        try:
            reply: list[Any] = await self._script(
                keys=[KEY_PREFIX + bucket.name for bucket in buckets], args=args
            )
        except (RedisError, OSError) as exc:
            raise BucketStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        allowed, index, remaining, wait_us, reset_us = (int(value) for value in reply)
        return Verdict(bool(allowed), buckets[index - 1], remaining, wait_us / 1e6, reset_us / 1e6)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class FamilyLimits:
    """The budgets of one route family; None turns that budget off."""

    ip: Limit | None
    key: Limit | None


def _limit(rate: float, burst: int) -> Limit | None:
    return Limit(rate, burst) if rate > 0 else None


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """Everything the limiter needs from the settings."""

    enabled: bool
    families: dict[Family, FamilyLimits]
    exempt: tuple[IPNetwork, ...]
    addresses: ClientAddress
    keys: KeyRing

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitPolicy:
        """The policy of a `gateway.settings.Settings`."""
        s = settings
        return cls(
            enabled=s.rate_limit_enabled,
            families={
                "graphql": FamilyLimits(
                    _limit(s.rate_limit_graphql_ip_rate, s.rate_limit_graphql_ip_burst),
                    _limit(s.rate_limit_graphql_key_rate, s.rate_limit_graphql_key_burst),
                ),
                "events": FamilyLimits(
                    _limit(s.rate_limit_events_ip_rate, s.rate_limit_events_ip_burst),
                    _limit(s.rate_limit_events_key_rate, s.rate_limit_events_key_burst),
                ),
                # Webhooks carry a signature or a shared secret, never an API key.
                "webhooks": FamilyLimits(
                    _limit(s.rate_limit_webhooks_ip_rate, s.rate_limit_webhooks_ip_burst), None
                ),
            },
            exempt=parse_networks(s.rate_limit_exempt, setting="RATE_LIMIT_EXEMPT"),
            addresses=ClientAddress(
                parse_networks(s.trusted_proxies, setting="TRUSTED_PROXIES"), s.proxy_header
            ),
            keys=s.key_ring(),
        )


def route_family(path: str) -> Family | None:
    """The rate-limited route family of a path; None for unlimited routes."""
    if path == "/graphql":
        return "graphql"
    if path == "/v1/events":
        return "events"
    if path.startswith("/webhooks/"):
        return "webhooks"
    return None


def _key_id(key: str) -> str:
    """A bucket name for an API key that does not reveal it (Redis keys can be listed)."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class RateLimiter:
    """The gateway's rate-limit service; opened and closed in the app's lifespan."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._redis_url = redis_url
        self._clock = clock
        self._local = MemoryBuckets(clock=clock)
        self._shared: RedisBuckets | None = None
        self._retry_at = 0.0  # while Redis is failing: when to try it again
        self._warned_proxy = False
        self._ip_bucket = functools.lru_cache(maxsize=4096)(self._ip_bucket_name)

    @property
    def shared(self) -> bool:
        """Whether budgets are kept in Redis (shared by replicas)."""
        return self._redis_url is not None

    async def __aenter__(self) -> RateLimiter:
        if self._redis_url is not None and self.policy.enabled:
            self._shared = RedisBuckets(self._redis_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None

    def buckets(self, family: Family, scope: Scope) -> list[Bucket]:
        """The buckets a request draws on: its client IP's and its valid API key's."""
        limits = self.policy.families[family]
        headers = Headers(scope=scope)
        buckets: list[Bucket] = []
        if limits.ip is not None:
            address = self._client_address(scope)
            name = self._ip_bucket(address) if address is not None else None
            if name is not None:
                buckets.append(Bucket(f"{family}:ip:{name}", "ip", limits.ip))
        if limits.key is not None:
            presented = bearer_token(headers)
            if presented is None and family == "events":
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                presented = query.get("key", [None])[0]
            # Only a valid key has a bucket: made-up keys would each get a fresh one.
            if presented and self.policy.keys.authenticate(presented) is not None:
                buckets.append(Bucket(f"{family}:key:{_key_id(presented)}", "key", limits.key))
        return buckets

    def _ip_bucket_name(self, address: IPAddress) -> str | None:
        """The bucket of a client address; None when it is exempt."""
        if any(address in network for network in self.policy.exempt):
            return None
        return bucket_name(address)

    def _client_address(self, scope: Scope) -> IPAddress | None:
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if not self._warned_proxy and peer:
            self._warn_untrusted_proxy(peer, headers)
        return self.policy.addresses.resolve(peer, headers)

    def _warn_untrusted_proxy(self, peer: str, headers: list[tuple[bytes, bytes]]) -> None:
        # A private or loopback peer sending a forwarding header is most likely our own
        # proxy left out of TRUSTED_PROXIES: then every visitor shares its budget.
        name = self.policy.addresses.header.encode()
        if not any(key == name for key, _ in headers):  # ASGI header names are lower-case
            return
        address, trusted = self.policy.addresses.classify(peer)
        if trusted or address is None or not any(address in net for net in _PROXY_RANGES):
            return
        self._warned_proxy = True
        logger.warning(
            "requests from %s carry %s, but %s is not in TRUSTED_PROXIES: rate limits "
            "count that proxy as one client (set TRUSTED_PROXIES if it is yours)",
            address,
            self.policy.addresses.header,
            address,
        )

    async def check(self, buckets: Sequence[Bucket]) -> Verdict:
        """Take a token from each bucket (shared store first); never raises for Redis."""
        store = self._shared
        if store is not None and self._clock() >= self._retry_at:
            try:
                verdict = await store.acquire(buckets)
            except BucketStoreUnavailable as exc:
                BACKEND_ERRORS.inc()
                if not self._retry_at:
                    BACKEND_DEGRADED.set(1)
                    logger.warning(
                        "rate limits: Redis unavailable (%s); each replica limits on its own "
                        "until it is back",
                        exc,
                    )
                self._retry_at = self._clock() + REDIS_RETRY_SECONDS
            else:
                if self._retry_at:
                    self._retry_at = 0.0
                    BACKEND_DEGRADED.set(0)
                    logger.warning("rate limits: Redis is back; budgets are shared again")
                return verdict
        return self._local.take(buckets)


def _seconds(value: float) -> int:
    """Whole seconds, rounded up: a client that waits this long is allowed."""
    return max(1, math.ceil(value - _EPSILON))


def _rate_text(rate: float) -> str:
    return f"{rate:g}"


def _headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    limit = verdict.bucket.limit
    window = max(1, round(limit.burst / limit.rate))
    return [
        (b"ratelimit-limit", b"%d" % limit.burst),
        (b"ratelimit-remaining", b"%d" % verdict.remaining),
        (b"ratelimit-reset", b"%d" % math.ceil(verdict.reset - _EPSILON)),
        (b"ratelimit-policy", b"%d;w=%d" % (limit.burst, window)),
    ]


_PATHS: dict[Family, str] = {
    "graphql": "/graphql",
    "events": "/v1/events",
    "webhooks": "/webhooks",
}
_EXPOSE = "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy"


def refusal(family: Family, verdict: Verdict) -> JSONResponse:
    """The 429 answer, in the error shape of the route family."""
    limit = verdict.bucket.limit
    retry = _seconds(verdict.retry_after)
    who = "this client IP address" if verdict.bucket.scope == "ip" else "this API key"
    message = (
        f"Too many requests to {_PATHS[family]} from {who}: the limit is "
        f"{_rate_text(limit.rate)} requests per second with bursts of up to {limit.burst}. "
        f"Retry after {retry} s."
    )
    headers = {name.decode(): value.decode() for name, value in _headers(verdict)}
    headers |= {"Retry-After": str(retry), "Cache-Control": "no-store"}
    if family == "graphql":
        extensions = {"code": "RATE_LIMITED", "retryAfter": retry, "scope": verdict.bucket.scope}
        body: dict[str, Any] = {"errors": [{"message": message, "extensions": extensions}]}
    else:
        body = {"error": message}
    if family == "events":
        # Browsers send events cross-origin: they may read the refusal and its headers.
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Access-Control-Expose-Headers"] = _EXPOSE
    return JSONResponse(body, status_code=429, headers=headers)


class RateLimitMiddleware:
    """Pure ASGI middleware: refuse over-budget requests to limited routes with 429."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request's buckets, then answer 429 or pass it on."""
        family = route_family(scope["path"]) if scope["type"] == "http" else None
        # CORS preflights are cheap and a refused one breaks the browser's real request.
        if family is None or scope["method"] == "OPTIONS" or not self.limiter.policy.enabled:
            await self.app(scope, receive, send)
            return
        buckets = self.limiter.buckets(family, scope)
        if not buckets:
            await self.app(scope, receive, send)
            return
        verdict = await self.limiter.check(buckets)
        if not verdict.allowed:
            RATE_LIMITED.labels(family, verdict.bucket.scope).inc()
            await refusal(family, verdict)(scope, receive, send)
            return
        extra = _headers(verdict)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                control = next((v for k, v in headers if k.lower() == b"cache-control"), b"")
                # A response an edge cache may share must not carry one client's budget.
                if b"public" not in control:
                    message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
