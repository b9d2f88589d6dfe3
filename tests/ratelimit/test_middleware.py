"""The middleware alone, in front of a minimal app: which responses carry RateLimit headers."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.ratelimit import RateLimiter, RateLimitMiddleware, RateLimitPolicy, route_family
from gateway.settings import Settings


async def answer(request: Request) -> Response:
    control = request.query_params.get("cache", "private, no-store")
    return JSONResponse({"ok": True}, headers={"Cache-Control": control})


def client(settings: Settings) -> httpx.AsyncClient:
    limiter = RateLimiter(RateLimitPolicy.from_settings(settings))
    app = Starlette(
        routes=[Route("/graphql", answer, methods=["GET", "POST"])],
        middleware=[Middleware(RateLimitMiddleware, limiter=limiter)],
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_publicly_cacheable_responses_carry_no_client_budget() -> None:
    settings = Settings(rate_limit_graphql_ip_rate=1, rate_limit_graphql_ip_burst=10)
    async with client(settings) as c:
        private = await c.get("/graphql")
        public = await c.get("/graphql", params={"cache": "public, s-maxage=60"})
    assert private.headers["RateLimit-Remaining"] == "9"
    assert private.headers["RateLimit-Limit"] == "10"
    assert private.headers["RateLimit-Policy"] == "10;w=10"
    assert private.headers["RateLimit-Reset"] == "1"
    # An edge cache would hand this one client's budget to everyone.
    assert public.status_code == 200
    assert "RateLimit-Remaining" not in public.headers


def test_route_families() -> None:
    assert route_family("/graphql") == "graphql"
    assert route_family("/v1/events") == "events"
    assert route_family("/webhooks/contentful") == "webhooks"
    for path in ("/healthz", "/readyz", "/metrics", "/graphql/x", "/v1/events/x", "/"):
        assert route_family(path) is None


@pytest.mark.parametrize("setting", ["trusted_proxies", "rate_limit_exempt"])
def test_a_bad_network_setting_stops_the_app_from_starting(setting: str) -> None:
    with pytest.raises(ValueError, match=rf"{setting.upper()}: 'ten' is not an IP address"):
        create_app(Settings(**{setting: "10.0.0.0/8, ten"}))
