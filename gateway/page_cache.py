"""Reuse GraphQL responses for `page` queries whose decisions are the same.

For a page-only query the response is a function of the query, its variables,
the page content version, the locale served and the decisions. This ASGI
layer decides the page *before* GraphQL execution (one profile read, the pure
selection), then answers from an in-process LRU when an identical response
was already produced; otherwise it lets Strawberry execute, with the decided
page handed to the resolver, and keeps the response if it had no errors.

Nothing visitor-specific enters a page response beyond what the decisions
capture, so two visitors with the same decisions correctly share it; the key
includes every decision record (variant, reason, rule), not only variant ids.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.json_input import JSONInputError, loads
from gateway.graphql_view import GRAPHQL_RESPONSE
from resolvers.assembly import PlannedPage, assemble_page
from resolvers.context import Services, VisitorIdentity
from resolvers.errors import PublicError
from resolvers.page_plan import page_arguments
from resolvers.request_facts import request_facts

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

_Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, _Response] = OrderedDict()

    def get(self, key: Hashable) -> _Response | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, value: _Response) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _request_data(scope: Scope, body: bytes) -> dict[str, Any] | None:
    """`{query, variables, operationName}` from a GET query string or a JSON body."""
    if scope["method"] == "GET":
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        query = params.get("query", [None])[0]
        if query is None:
            return None
        try:
            variables = loads(params["variables"][0]) if "variables" in params else None
        except JSONInputError:
            return None  # the GraphQL view reports it
        name = params.get("operationName", [None])[0]
        return {"query": query, "variables": variables, "operationName": name}
    try:
        data = loads(body)
    except JSONInputError:
        return None  # the GraphQL view reports it
    return data if isinstance(data, dict) else None


class PageResponseCache:
    """ASGI middleware in front of the GraphQL view (inside visitor identification)."""

    def __init__(self, app: ASGIApp, *, maxsize: int = 4096, max_tokens: int) -> None:
        self.app = app
        self.max_tokens = max_tokens
        self.cache = _LRU(maxsize)
        self.hits = 0
        self.misses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        body = b""
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            if not headers.get(b"content-type", b"").startswith(b"application/json"):
                await self.app(scope, receive, send)
                return
            body, more = await _read_body(receive)
            if more is None:
                return  # the client went away
            if more:
                await self.app(scope, _replay(body, receive, more_body=True), send)
                return
        key, planned = await self._plan(scope, body)
        if key is None:
            await self.app(scope, _replay(body, receive), send)
            return
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
            await _send_response(send, cached)
            return
        self.misses += 1
        scope["state"]["page_plan"] = planned
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, _replay(body, receive), capture)
        response = _assemble(captured)
        if (
            response is not None
            and response[0] == 200
            and scope["state"].get("page_plan_used")
            and _succeeded(response[2])
        ):
            self.cache.put(key, response)
        for message in captured:
            await send(message)

    async def _plan(self, scope: Scope, body: bytes) -> tuple[Hashable | None, PlannedPage | None]:
        data = _request_data(scope, body)
        if data is None:
            return None, None
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if (
            not isinstance(query, str)
            or not (variables is None or isinstance(variables, dict))
            or not (name is None or isinstance(name, str))
        ):
            return None, None
        args = page_arguments(query, name, variables, max_tokens=self.max_tokens)
        if args is None:
            return None, None
        state = scope.get("state", {})
        services: Services = state["services"]
        visitor: VisitorIdentity = state["visitor"]
        try:
            facts = request_facts(HTTPConnection(scope), visitor.id, args.context)
            assembled = await assemble_page(services, args.slug, args.locale, facts)
        except PublicError:
            return None, None  # the ordinary path reports it
        accept = dict(scope["headers"]).get(b"accept", b"")
        key = (
            query,
            name,
            json.dumps(variables, sort_keys=True, separators=(",", ":")),
            GRAPHQL_RESPONSE.encode() in accept,
            assembled.version,
            assembled.locale,
            assembled.decision,
            # Templated fields read the visitor: identical decisions may differ there.
            assembled.templated_values,
        )
        return key, PlannedPage(args=args, assembled=assembled)


async def _read_body(receive: Receive) -> tuple[bytes, bool | None]:
    """Read up to MAX_BODY: the bytes and whether more follow (None: disconnected)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if not more or size > MAX_BODY:
            return b"".join(chunks), more


def _replay(body: bytes, receive: Receive, *, more_body: bool = False) -> Receive:
    """A `receive` that first yields the already-read body, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


def _assemble(messages: list[Message]) -> _Response | None:
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    if start is None:
        return None
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    if any(m.get("more_body") for m in messages if m["type"] == "http.response.body"):
        return None
    return start["status"], list(start.get("headers", [])), body


def _succeeded(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "errors" not in data and data.get("data") is not None


async def _send_response(send: Send, response: _Response) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})
