"""A contract origin: answers /graphql with exactly the cache headers the gateway promises.

The Varnish tests put this small Starlette app (run by uvicorn in a child
process) behind a real varnishd, so the VCL is tested against the header
contract itself rather than against today's gateway:

- `public`: `Cache-Control: public, max-age=0, s-maxage=…, stale-while-revalidate=…,
  stale-if-error=…`, a strong ETag, `Surrogate-Key` and `xkey`, no Set-Cookie.
- `audience`: the same, plus `X-Tessera-Edge-Key` and `Vary: X-Tessera-Edge-Key`,
  but only when the request's `tsr_ek` cookie is the visitor's current key;
  otherwise `private` with a Set-Cookie refreshing `tsr_ek`.
- `private`: `Cache-Control: private, no-store`, Set-Cookie when the visitor is new.

What a page does is chosen by the request's `variables` (GET) or JSON body
(POST): `slug`, `scope` (`public`, `audience`, `private`, `mixed`: private
for visitors whose id starts with `p-`, audience for the others, or one of
the misbehaving scopes `public-cookie`, `public-nostore`, `public-unlabeled`,
`audience-novary`, `audience-wrongkey`), `smaxage`, `swr`, `sie`,
`status` and `delay`. The media type follows `Accept`; a request with an `Origin` gets
CORS headers for it. Each body names what it may depend on: the visitor id
for private answers, the audience group for audience answers, nothing
personal for public ones, so a test can tell exactly whose response a
client received.

Control routes (not under /graphql, never cached): `GET /__stats` gives the
backend hits, 304 answers and the most requests at once per URL;
`POST /__publish?slug=` bumps a page's content version;
`POST /__fail?slug=&status=503` makes a page fail (`status=0` heals it).
Run: `python -m tests.edge.origin PORT`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import uuid
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEY_SECRET = b"contract-origin-edge-key-secret"
GROUPS = 4
LOCALE = "en-US"


def group_of(visitor: str) -> str:
    """The audience group of a visitor (what the edge key stands for)."""
    return f"g{hashlib.sha256(visitor.encode()).digest()[0] % GROUPS}"


def edge_key(group: str) -> str:
    """The opaque edge key of a group: an HMAC digest, as the gateway's."""
    digest = hmac.new(KEY_SECRET, group.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def surrogate_keys(slug: str) -> str:
    """The page's surrogate keys, space-separated."""
    return f"page:{slug} block:hero-{slug} block:grid-{slug} locale:{LOCALE}"


class ContractOrigin:
    """The origin's state: content versions and backend hits per URL."""

    def __init__(self) -> None:
        self.versions: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.failing: dict[str, int] = {}

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/graphql", self.graphql, methods=["GET", "HEAD", "POST"]),
                Route("/healthz", self.healthz),
                Route("/__stats", self.stats),
                Route("/__publish", self.publish, methods=["POST"]),
                Route("/__fail", self.fail, methods=["POST"]),
                Route("/v1/events", self.other, methods=["GET", "POST"]),
                Route("/webhooks/{cms}", self.other, methods=["GET", "POST"]),
                Route("/metrics", self.other),
            ]
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {"hits": dict(self.hits), "not_modified": dict(self.not_modified), "peak": self.peak}
        )

    async def publish(self, request: Request) -> Response:
        slug = request.query_params["slug"]
        self.versions[slug] += 1
        return JSONResponse({"slug": slug, "version": self.versions[slug]})

    async def fail(self, request: Request) -> Response:
        slug = request.query_params["slug"]
        status = int(request.query_params.get("status", "503"))
        if status:
            self.failing[slug] = status
        else:
            self.failing.pop(slug, None)
        return JSONResponse({"slug": slug, "status": status})

    async def other(self, request: Request) -> Response:
        # A careless route that claims to be cacheable: the VCL must pass it anyway.
        self.hits[str(request.url.path)] += 1
        return JSONResponse(
            {"route": request.url.path, "hits": self.hits[str(request.url.path)]},
            headers={"Cache-Control": "public, max-age=600, s-maxage=600"},
        )

    async def graphql(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.hits[target] += 1
        self.in_flight[target] += 1
        self.peak[target] = max(self.peak[target], self.in_flight[target])
        try:
            return await self._graphql(request, target)
        finally:
            self.in_flight[target] -= 1

    async def _graphql(self, request: Request, target: str) -> Response:
        if request.method == "POST":
            body = await request.json()
            variables = body.get("variables") or {}
        else:
            variables = json.loads(request.query_params.get("variables") or "{}")
        slug = str(variables.get("slug", "home"))
        scope = str(variables.get("scope", "public"))
        # A slow page (seconds): shows whether Varnish sends requests side by side.
        await asyncio.sleep(float(variables.get("delay", 0)))
        visitor = request.cookies.get("tsr_vid")
        cookies: list[str] = []
        if visitor is None:
            visitor = f"new-{uuid.uuid4().hex}"
            cookies.append(f"tsr_vid={visitor}; Path=/; HttpOnly; SameSite=Lax")
        if scope == "mixed":
            scope = "private" if visitor.startswith("p-") else "audience"
        group = group_of(visitor)
        current = edge_key(group)
        presented = request.cookies.get("tsr_ek")
        if scope.startswith("audience") and presented != current:
            # No key or a stale one: answer privately and hand out the current key.
            scope = "private"
            cookies.append(f"tsr_ek={current}; Path=/; SameSite=Lax")
        status = self.failing.get(slug, int(variables.get("status", 200)))
        if status >= 400:
            scope = "private"
        page: dict[str, Any] = {
            "slug": slug,
            "scope": scope,
            "version": self.versions[slug],
            "group": group if scope.startswith("audience") else None,
            "visitor": visitor if scope == "private" else None,
        }
        headers = self._headers(scope, slug, variables, current)
        if scope.startswith("public") or scope.startswith("audience"):
            cookies = []
            if scope == "public-cookie":
                # A broken origin: shareable headers, yet a cookie naming this visitor.
                cookies.append(f"tsr_vid={visitor}; Path=/")
        origin = request.headers.get("origin")
        if origin is not None:
            # CORS as Starlette's middleware answers a listed origin.
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Vary"] = ", ".join(filter(None, [headers.get("Vary"), "Origin"]))
        media_type = "application/json"
        if "application/graphql-response+json" in request.headers.get("accept", ""):
            media_type = "application/graphql-response+json"
        body_bytes = json.dumps({"data": {"page": page}}, sort_keys=True).encode()
        if scope != "private":
            digest = hashlib.sha256(body_bytes + media_type.encode()).hexdigest()
            etag = f'"{digest[:32]}"'
            headers["ETag"] = etag
            if request.headers.get("if-none-match") == etag:
                self.not_modified[target] += 1
                return Response(status_code=304, headers=headers)
        response = Response(
            body_bytes if request.method != "HEAD" else b"",
            status_code=status,
            media_type=media_type,
            headers=headers,
        )
        if request.method == "HEAD":
            response.headers["content-length"] = str(len(body_bytes))
        for cookie in cookies:
            response.raw_headers.append((b"set-cookie", cookie.encode()))
        return response

    @staticmethod
    def _headers(
        scope: str, slug: str, variables: dict[str, Any], current_key: str
    ) -> dict[str, str]:
        if scope == "private":
            return {"Cache-Control": "private, no-store", "X-Tessera-Cache-Scope": "private"}
        smaxage = int(variables.get("smaxage", 60))
        swr = int(variables.get("swr", 30))
        sie = int(variables.get("sie", 86400))
        control = (
            f"public, max-age=0, s-maxage={smaxage}, "
            f"stale-while-revalidate={swr}, stale-if-error={sie}"
        )
        if scope == "public-nostore":
            control = "public, no-store"
        headers = {
            "Cache-Control": control,
            "X-Tessera-Cache-Scope": "audience" if scope.startswith("audience") else "public",
            "Surrogate-Key": surrogate_keys(slug),
            "xkey": surrogate_keys(slug),
        }
        if scope == "public-unlabeled":
            del headers["X-Tessera-Cache-Scope"]
        if scope.startswith("audience"):
            headers["X-Tessera-Edge-Key"] = current_key
            if scope == "audience-wrongkey":
                headers["X-Tessera-Edge-Key"] = edge_key("someone-else")
            if scope != "audience-novary":
                headers["Vary"] = "X-Tessera-Edge-Key"
        return headers


def main() -> None:
    """Serve the contract origin on 127.0.0.1:PORT."""
    port = int(sys.argv[1])
    uvicorn.run(
        ContractOrigin().app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
