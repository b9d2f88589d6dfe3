"""Identify the visitor on every GraphQL request (pure ASGI middleware).

The id comes from the `X-Visitor-Id` header (server-side renderers, edge
workers), else the `tsr_vid` cookie (browsers), else a new random id that is
set as an HttpOnly, SameSite=Lax cookie. Responses that depend on the
visitor are marked `private, no-store` so no shared cache keeps them.
"""

from __future__ import annotations

import json
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers.context import VisitorIdentity

COOKIE_NAME = "tsr_vid"
HEADER_NAME = "x-visitor-id"
COOKIE_MAX_AGE = 365 * 24 * 3600
_VISITOR_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_INVALID_ID = "X-Visitor-Id: must be 1-128 characters of letters, digits, '.', '_', ':' or '-'."


def _cookie_value(raw: str | None) -> str | None:
    # Starlette's lenient parser: one malformed unrelated cookie must not hide ours.
    return cookie_parser(raw).get(COOKIE_NAME) if raw else None


def identify(header: str | None, cookie_header: str | None) -> VisitorIdentity | None:
    """The visitor for these headers; None when the header id is invalid."""
    if header is not None:
        return VisitorIdentity(header, "header") if _VISITOR_ID.fullmatch(header) else None
    cookie = _cookie_value(cookie_header)
    if cookie is not None and _VISITOR_ID.fullmatch(cookie):
        return VisitorIdentity(cookie, "cookie")
    return VisitorIdentity(uuid.uuid4().hex, "new")


class VisitorMiddleware:
    """Attach `scope["state"]["visitor"]`, set the cookie, keep responses private."""

    def __init__(self, app: ASGIApp, *, secure_cookie: bool = False) -> None:
        self.app = app
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = cookie_header = None
        for name, value in scope["headers"]:
            if name == b"x-visitor-id":
                header = value.decode("latin-1")
            elif name == b"cookie":
                cookie_header = value.decode("latin-1")
        visitor = identify(header, cookie_header)
        if visitor is None:
            await _reject(send, _INVALID_ID)
            return
        scope.setdefault("state", {})["visitor"] = visitor
        cookie = self._set_cookie(visitor.id) if visitor.is_new else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "private, no-store"
                headers.add_vary_header("Cookie")
                headers.add_vary_header("X-Visitor-Id")
                if cookie is not None:
                    headers.append("Set-Cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _set_cookie(self, visitor_id: str) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return (
            f"{COOKIE_NAME}={visitor_id}; Path=/; Max-Age={COOKIE_MAX_AGE}; "
            f"HttpOnly; SameSite=Lax{secure}"
        )


async def _reject(send: Send, message: str) -> None:
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]})
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
