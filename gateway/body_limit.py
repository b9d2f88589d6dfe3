"""Read a request body whole, bounded in size and in time, before the app sees it.

Strawberry reads `/graphql` bodies without a bound, and a client that drips
a body a byte at a time holds a worker's request open for as long as it
likes (so did the event and webhook routes). This middleware reads the body
first: over `max_bytes` (declared or streamed) answers 413 and closes the
connection, slower than `timeout` seconds answers 408, a client that hangs up
before its body is complete gets a 400 nobody reads (the app never runs on
half a body), and the app then receives the body in one message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: How long a client may take to send its body, once its headers are in.
BODY_TIMEOUT_SECONDS = 10.0


def graphql_error(message: str) -> object:
    """A refusal in GraphQL's error shape (`/graphql`)."""
    return {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


def plain_error(message: str) -> object:
    """A refusal as `{"error": message}` (the event and webhook routes)."""
    return {"error": message}


class _Disconnected:
    """The client hung up before its body was complete."""


class BodyLimit:
    """ASGI middleware: bodies of at most `max_bytes`, received within `timeout` seconds."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float | None = None,
        error_body: Callable[[str], object] = graphql_error,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = BODY_TIMEOUT_SECONDS if timeout is None else timeout
        self.error_body = error_body
        #: Sent with every refusal (the event route's CORS headers, so browsers read it).
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        too_large = f"The request body is larger than {self.max_bytes} bytes."
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await self._reject(send, 400, "Content-Length is not a number.")
                    return
                if int(value) > self.max_bytes:
                    await self._reject(send, 413, too_large)
                    return
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._read(receive)
        except TimeoutError:
            message = f"The request body did not arrive within {self.timeout:g} s."
            await self._reject(send, 408, message)
            return
        if body is None:
            await self._reject(send, 413, too_large)
            return
        if isinstance(body, _Disconnected):
            # Nobody reads this answer; it is what the request counts as (a client's error).
            await self._reject(send, 400, "The client disconnected before sending its body.")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | _Disconnected | None:
        """The whole body, None past `max_bytes`, or `_Disconnected`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reject(self, send: Send, status: int, message: str) -> None:
        body = json.dumps(self.error_body(message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    # The unread rest of the body would be taken for the next request.
                    (b"connection", b"close"),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body once, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
