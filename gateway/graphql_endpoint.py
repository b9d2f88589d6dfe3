"""`/graphql`: one path from the HTTP request to the decided page and back.

For each request this endpoint

1. identifies the visitor (`X-Visitor-Id`, else the `tsr_vid` cookie, else a
   new id) and reads the GraphQL-over-HTTP parameters (GET/HEAD query string
   or a JSON POST body), resolving persisted-query hashes;
2. opens one `Delivery` for the request: the profile is read once and each
   page decided once, whoever asks (this endpoint, the response cache or a
   resolver);
3. for a page-only query, decides the page first and answers from the
   response cache when the same decisions already produced a body;
   otherwise executes the query with Strawberry (the document is parsed once,
   through `parse_document`);
4. derives the response's cache policy from everything the request decided
   (`Delivery.policy`), and from it the headers: `public` and `audience`
   responses get `Cache-Control: public, s-maxage=...`, a strong `ETag`
   (`If-None-Match` answers 304) and `Surrogate-Key`/`xkey`; `audience` ones
   also `X-Tessera-Edge-Key` and `Vary: X-Tessera-Edge-Key`; everything else
   is `private, no-store`. Only private responses set cookies.

Per the GraphQL-over-HTTP spec, a client that accepts
`application/graphql-response+json` gets that media type, and a request that
fails before execution answers 400; `application/json` clients get 200 with
the errors in the body. GET may not run mutations (405).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType
from starlette.datastructures import MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperation

from common.json_input import JSONInputError, loads
from delivery.auth import bearer_token
from delivery.errors import PublicError
from delivery.pages import CachePolicy, Delivery
from delivery.request_facts import header_lookup
from delivery.services import Services, VisitorIdentity
from gateway.observability import OperationNames, OperationTimer
from gateway.persisted_queries import PersistedQueries, PersistedQueryError
from gateway.response_cache import CachedBody, ResponseCache, response_key
from gateway.visitor import (
    EDGE_COOKIE,
    EDGE_HEADER,
    INVALID_VISITOR_ID,
    CookiePolicy,
    identify,
)
from resolvers.context import GraphQLContext
from resolvers.extensions.parse_cache import parse_document
from resolvers.page_plan import page_arguments

logger = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
PREVIEW_HEADER = "X-Tessera-Preview"
SCOPE_HEADER = "X-Tessera-Cache-Scope"
#: The key of exactly the facts the page read (an edge worker may key on it instead).
PAGE_KEY_HEADER = "X-Tessera-Page-Key"
#: Root fields whose answer is the same for every visitor (beyond `page`, which decides).
SHARED_ROOT_FIELDS = frozenset({"__typename", "__schema", "__type"})


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    """How long shared caches may keep `public` and `audience` responses."""

    s_maxage: int = 60
    stale_while_revalidate: int = 30
    stale_if_error: int = 86_400

    @property
    def cache_control(self) -> str:
        """The Cache-Control of a shareable response: browsers revalidate every time.

        No stale-while-revalidate here: a browser would honour it too and show a
        visitor the page from before their own change (a consent withdrawal) for
        that long. Shared caches get it in `edge_control`.
        """
        return f"public, max-age=0, s-maxage={self.s_maxage}"

    @property
    def edge_control(self) -> str:
        """Surrogate-Control / CDN-Cache-Control: what only shared caches read."""
        return (
            f"max-age={self.s_maxage}, "
            f"stale-while-revalidate={self.stale_while_revalidate}, "
            f"stale-if-error={self.stale_if_error}"
        )


class BadRequest(Exception):
    """The request is not a GraphQL-over-HTTP request; `status` is the answer."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Params:
    """The GraphQL-over-HTTP request parameters."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _json_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return loads(value)
    except JSONInputError as exc:
        raise BadRequest(400, f"{name}: not valid JSON: {exc}.") from None


def _params(data: Mapping[str, Any]) -> Params:
    query, variables = data.get("query"), data.get("variables")
    name, extensions = data.get("operationName"), data.get("extensions")
    if not (query is None or isinstance(query, str)):
        raise BadRequest(400, "query: must be a string.")
    if not (variables is None or isinstance(variables, dict)):
        raise BadRequest(400, "variables: must be an object or null.")
    if not (name is None or isinstance(name, str)):
        raise BadRequest(400, "operationName: must be a string or null.")
    if not (extensions is None or isinstance(extensions, dict)):
        raise BadRequest(400, "extensions: must be an object or null.")
    return Params(query, variables, name, extensions)


async def read_params(request: Request) -> Params:
    """The parameters of a GET/HEAD query string or a JSON POST body."""
    if request.method in ("GET", "HEAD"):
        args = request.query_params
        return _params(
            {
                "query": args.get("query"),
                "variables": _json_param(args.get("variables"), "variables"),
                "operationName": args.get("operationName") or None,
                "extensions": _json_param(args.get("extensions"), "extensions"),
            }
        )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON:
        raise BadRequest(415, "Send the request as application/json (or use GET).")
    body = await request.body()
    try:
        data = loads(body)
    except JSONInputError as exc:
        raise BadRequest(400, f"Unable to parse the request as JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "The request body must be a JSON object with a 'query' member.")
    return _params(data)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [op for op in operations if op.name and op.name.value == name]
    return operations[0] if len(operations) == 1 else None


def _no_operation(document: DocumentNode, name: str | None) -> str:
    """Why `document` names no single operation to run (graphql-core's wording)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        return "Must provide an operation."
    if name is None:
        return "Must provide operation name if query contains multiple operations."
    shown = name if len(name) <= 64 else name[:64] + "…"
    return f"Unknown operation named {shown!r}."


def _root_fields(operation: OperationDefinitionNode | None) -> set[str] | None:
    """The operation's root field names, or None if fragments hide them."""
    if operation is None:
        return None
    names: set[str] = set()
    for selection in operation.selection_set.selections:
        name = getattr(selection, "name", None)
        if getattr(selection, "selection_set", None) is not None and name is None:
            return None  # an inline fragment or spread at the root
        if name is None:
            return None
        names.add(name.value)
    return names


def _is_request_error(result: ExecutionResult) -> bool:
    """True when the request failed before execution: no data, no error paths."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


class GraphQLEndpoint:
    """The ASGI app behind `/graphql` (see the module docstring)."""

    def __init__(
        self,
        schema: Schema,
        *,
        graphiql: bool,
        cookies: CookiePolicy,
        edge: EdgeOptions,
        max_tokens: int,
        response_cache: ResponseCache | None = None,
        operation_names: int = 100,
    ) -> None:
        self.schema = schema
        self.graphiql = graphiql
        self.cookies = cookies
        self.edge = edge
        self.max_tokens = max_tokens
        self.response_cache = response_cache
        self.operation_names = OperationNames(operation_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        timer = OperationTimer(self.operation_names)
        try:
            response = await self.handle(request, timer)
            await response(scope, receive, send)
        finally:
            timer.observe()

    async def handle(self, request: Request, timer: OperationTimer | None = None) -> Response:
        """Answer one GraphQL-over-HTTP request (`timer` learns which operation runs)."""
        if request.method not in ("GET", "HEAD", "POST"):
            return _plain_error(
                405, "GraphQL takes GET, HEAD and POST.", {"Allow": "GET, HEAD, POST"}
            )
        headers = header_lookup(request.headers)
        visitor = identify(headers.get("x-visitor-id"), headers.get("cookie"))
        if visitor is None:
            return _plain_error(400, INVALID_VISITOR_ID)
        accept = headers.get("accept", "")
        if (
            request.method != "POST"
            and "text/html" in accept
            and "query" not in request.query_params
            and "extensions" not in request.query_params
        ):
            if not self.graphiql:
                return _plain_error(
                    404, "GraphiQL is off on this gateway (GRAPHIQL, INTROSPECTION)."
                )
            return HTMLResponse(get_graphql_ide_html(graphql_ide="graphiql"))
        media_type = GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else JSON
        services: Services = request.state.services
        # Opened in the lifespan: registrations live in the shared cache.
        persisted: PersistedQueries | None = request.state.persisted_queries
        principal = services.keys.authenticate(bearer_token(headers))
        try:
            params = await read_params(request)
            query, register = params.query, None
            if persisted is not None:
                exempt = principal is not None and principal.kind == "admin"
                resolved = await persisted.resolve(query, params.extensions, exempt=exempt)
                query, register = resolved.query, resolved.register
            elif params.extensions and "persistedQuery" in params.extensions:
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", status=400
                )
        except BadRequest as exc:
            return _plain_error(exc.status, exc.message, exc.headers)
        except PersistedQueryError as exc:
            status = 400 if media_type == GRAPHQL_RESPONSE else exc.status
            error = {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]}
            return _private(_encode(error), status, media_type)
        if query is None:
            return _plain_error(400, "No GraphQL query found in the request.")
        delivery = Delivery(services, visitor, headers)
        document: DocumentNode | None
        try:
            document = parse_document(query, self.max_tokens)
        except GraphQLError:
            document = None  # Strawberry reports the syntax error
        operation = _operation(document, params.operation_name) if document else None
        if document is not None and operation is None:
            # Strawberry would fail on it with an internal error (a 500).
            return _request_error(_no_operation(document, params.operation_name), media_type)
        if operation is not None and operation.operation == OperationType.SUBSCRIPTION:
            return _request_error("This gateway serves no subscriptions.", media_type)
        if timer is not None and operation is not None:
            timer.chose(operation.name.value if operation.name else None, operation.operation.value)
        if operation is not None and operation.operation != OperationType.QUERY:
            if request.method != "POST":
                return _plain_error(
                    405,
                    "GET and HEAD run queries only: send mutations with POST.",
                    {"Allow": "POST"},
                )
            delivery.mark_private(operation.operation.value)
        cache_key = None
        cached: CachedBody | None = None
        if self.response_cache is not None and document is not None:
            args = page_arguments(document, params.operation_name, params.variables)
            if args is not None:
                try:
                    page = await delivery.page(args.slug, args.locale, args.context)
                except PublicError:
                    pass  # execution reports it (the failed decision is not retried)
                else:
                    cache_key = response_key(
                        query, params.operation_name, params.variables, media_type, [page]
                    )
                    cached = self.response_cache.get(cache_key)
        if cached is not None:
            body, status = cached.body, 200
        else:
            context = GraphQLContext(
                services=services,
                visitor=visitor,
                delivery=delivery,
                headers=request.headers,
                principal=principal,
            )
            try:
                result = await self.schema.execute(
                    query,
                    variable_values=params.variables,
                    context_value=context,
                    operation_name=params.operation_name,
                    allowed_operation_types=(
                        {StrawberryOperation.QUERY}
                        if request.method != "POST"
                        else {StrawberryOperation.QUERY, StrawberryOperation.MUTATION}
                    ),
                )
            except InvalidOperationTypeError:
                return _plain_error(
                    405,
                    "GET and HEAD run queries only: send mutations with POST.",
                    {"Allow": "POST"},
                )
            except MissingQueryError:
                return _plain_error(400, "No GraphQL query found in the request.")
            request_error = _is_request_error(result)
            processed = dict(process_result(result))
            if request_error:
                # Nothing was executed: the GraphQL-over-HTTP spec wants no `data` at all.
                processed.pop("data", None)
            body = _encode(processed)
            status = 400 if request_error and media_type == GRAPHQL_RESPONSE else 200
            if result.errors:
                delivery.mark_private("errors")
            else:
                roots = _root_fields(operation)
                others = sorted((roots or {"?"}) - SHARED_ROOT_FIELDS - {"page"})
                if others:
                    delivery.mark_private(f"field:{others[0]}")
                if cache_key is not None and self.response_cache is not None:
                    self.response_cache.put(cache_key, CachedBody(body, media_type))
            if register is not None and persisted is not None and not request_error:
                # Parsed and validated: worth remembering under its hash.
                await persisted.register(register, query)
        presented = headers.get(EDGE_HEADER.lower()) or _cookie(headers, EDGE_COOKIE)
        policy = delivery.policy(presented)
        return self._respond(request, body, status, media_type, policy, visitor)

    def _respond(
        self,
        request: Request,
        body: bytes,
        status: int,
        media_type: str,
        policy: CachePolicy,
        visitor: VisitorIdentity,
    ) -> Response:
        headers = MutableHeaders()
        headers["Content-Type"] = f"{media_type}; charset=utf-8"
        headers[SCOPE_HEADER] = policy.scope
        if policy.reason == "preview":
            headers[PREVIEW_HEADER] = "true"
        if policy.scope == "private" or status != 200:
            headers["Cache-Control"] = "private, no-store"
            headers["Vary"] = "Accept, Cookie, X-Visitor-Id"
            if visitor.is_new:
                headers.append("Set-Cookie", self.cookies.visitor(visitor.id))
            if policy.refresh_edge_key is not None:
                headers.append("Set-Cookie", self.cookies.edge_key(policy.refresh_edge_key))
            return _response(request, body, status, headers)
        etag = _etag(body)
        headers["Cache-Control"] = self.edge.cache_control
        # Varnish (the shipped VCL) and Fastly read Surrogate-Control; Cloudflare and
        # other CDNs CDN-Cache-Control (RFC 9213). Edges strip both before browsers.
        headers["Surrogate-Control"] = self.edge.edge_control
        headers["CDN-Cache-Control"] = self.edge.edge_control
        headers["ETag"] = etag
        keys = " ".join(policy.surrogate_keys or ("graphql",))
        headers["Surrogate-Key"] = keys  # Fastly
        headers["xkey"] = keys  # Varnish (varnish-modules xkey)
        headers["Cache-Tag"] = ",".join(policy.surrogate_keys or ("graphql",))  # Cloudflare
        headers["Vary"] = "Accept"
        if policy.scope == "audience" and policy.edge_key is not None:
            # The key it may be stored under (what the request presented, checked current);
            # an edge verifies it matches the request's before it stores the response.
            headers[EDGE_HEADER] = policy.edge_key
            if policy.page_key is not None:
                headers[PAGE_KEY_HEADER] = policy.page_key
            headers["Vary"] = f"Accept, {EDGE_HEADER}"
        if _matches(request.headers.get("if-none-match"), etag):
            del headers["Content-Type"]
            return Response(status_code=304, headers=dict(headers))
        return _response(request, body, status, headers)


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    # Starlette's lenient parser: one malformed unrelated cookie must not hide ours.
    return cookie_parser(raw).get(name) if raw else None


def _encode(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _response(request: Request, body: bytes, status: int, headers: MutableHeaders) -> Response:
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=status, headers=dict(headers))
    response = Response(body, status_code=status)
    for name, value in headers.raw:
        response.raw_headers.append((name, value))
    return response


def _private(body: bytes, status: int, media_type: str) -> Response:
    return Response(
        body,
        status_code=status,
        headers={
            "Cache-Control": "private, no-store",
            "Content-Type": f"{media_type}; charset=utf-8",
        },
    )


def _request_error(message: str, media_type: str) -> Response:
    """A request that cannot run, as GraphQL-over-HTTP answers it (400 for its media type)."""
    status = 400 if media_type == GRAPHQL_RESPONSE else 200
    return _private(_encode({"errors": [{"message": message}]}), status, media_type)


def _plain_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = _encode({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]})
    return Response(
        body,
        status_code=status,
        headers={
            "Content-Type": f"{JSON}; charset=utf-8",
            "Cache-Control": "private, no-store",
            **(headers or {}),
        },
    )
