"""Answer an unexpected exception with a 500 and keep the connection usable.

Starlette's outermost `ServerErrorMiddleware` sends a 500 and then re-raises,
and uvicorn closes a connection whose application raised: the client's next
request on that keep-alive connection was reset. This middleware sits just
inside it, logs the exception once with the route, and completes the
response itself, so nothing propagates. No trace reaches the client.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_BODY = json.dumps(
    {
        "errors": [
            {
                "message": "Internal error: the request could not be completed.",
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ]
    }
).encode()


class LastResort:
    """ASGI middleware: no exception escapes an HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # half a response is out: only closing the connection is honest
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BODY)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})
