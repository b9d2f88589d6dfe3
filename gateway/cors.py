"""CORS for `/graphql` and `/v1/events`, from `CORS_ORIGINS`, with Starlette's middleware.

Listed origins may send credentials (the visitor cookie crosses origins; set
`COOKIE_SAME_SITE=none`, which implies `Secure`, when the app's site differs
from the API's). `*` allows any origin without credentials. Every response
of a CORS-enabled route says `Vary: Origin`, so an edge cache never hands a
response made for one origin (or none) to another.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Visitor-Id",
    "X-Request-Id",
    "X-Tessera-Edge-Key",
    "Apollo-Require-Preflight",
    "apollographql-client-name",
    "apollographql-client-version",
)
EXPOSE_HEADERS = ("ETag", "X-Tessera-Cache-Scope", "X-Tessera-Edge-Key", "Retry-After")


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which origins may call, and whether with credentials."""

    origins: tuple[str, ...]

    @property
    def any_origin(self) -> bool:
        """`*`: any origin, never with credentials."""
        return "*" in self.origins


def cors_policy(value: str) -> CorsPolicy | None:
    """The policy `CORS_ORIGINS` describes, or None when it is empty."""
    origins = tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(
                f"CORS_ORIGINS: {origin!r} is not an origin such as https://shop.example"
            )
    return CorsPolicy(origins) if origins else None


class _VaryOrigin:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "origin" not in headers.get("vary", "").lower():
                    headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_vary)


def with_cors(app: ASGIApp, policy: CorsPolicy | None) -> ASGIApp:
    """`app` behind CORS when a policy is configured, else unchanged."""
    if policy is None:
        return app
    return _VaryOrigin(
        CORSMiddleware(
            app,
            allow_origins=list(policy.origins),
            allow_credentials=not policy.any_origin,
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=list(ALLOW_HEADERS),
            expose_headers=list(EXPOSE_HEADERS),
            max_age=600,
        )
    )
