"""Strawberry's ASGI view with Tessera's context and GraphQL-over-HTTP statuses.

Per the GraphQL-over-HTTP spec, a client that accepts
`application/graphql-response+json` gets that media type, and a request that
fails before execution (syntax, validation, variable coercion) answers 400.
Legacy `application/json` clients get 200 with the errors in the body.
"""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from common.json_input import JSONInputError, loads
from gateway.auth import bearer_token
from resolvers.assembly import RequestReads
from resolvers.context import GraphQLContext, Services

GRAPHQL_RESPONSE = "application/graphql-response+json"


def wants_graphql_response(request: Request) -> bool:
    """Whether the client prefers `application/graphql-response+json`."""
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE in accept


def is_request_error(result: ExecutionResult) -> bool:
    """True when the request failed before execution: no data, no error paths."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


class TesseraGraphQL(GraphQL[GraphQLContext, None]):
    """The `/graphql` endpoint."""

    def parse_json(self, data: str | bytes) -> Any:
        """Bodies, `variables` and `extensions`: strict, bounded JSON, else 400."""
        try:
            return loads(data)
        except JSONInputError as exc:
            raise HTTPException(400, f"Unable to parse the request as JSON: {exc}.") from None

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Refuse a JSON body that is not an object before Strawberry reads it as one."""
        content_type = (request.content_type or "").lower()
        if request.method == "POST" and "application/json" in content_type:
            body = await request.get_body()
            # JSON that starts with "{" is an object or invalid (reported by parse_json).
            if not body.lstrip(b" \t\r\n").startswith(b"{"):
                self.parse_json(body)  # the precise error, if it is not JSON at all
                raise HTTPException(
                    400, "The request body must be a JSON object with a 'query' member."
                )
        return await super().parse_http_body(request)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        """Hand resolvers the shared services and the identified visitor."""
        services: Services = request.state.services
        context = GraphQLContext(
            request=request,
            response=response if isinstance(response, Response) else None,
            services=services,
            visitor=request.state.visitor,
            reads=RequestReads(services),
            principal=services.keys.authenticate(bearer_token(request.headers)),
        )
        request.state.graphql_context = context
        return context

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Pick the media type and status the spec asks for."""
        if wants_graphql_response(request):
            context: GraphQLContext | None = getattr(request.state, "graphql_context", None)
            response = context.response if context is not None else None
            if response is not None:
                response.media_type = GRAPHQL_RESPONSE
                if is_request_error(result):
                    response.status_code = 400
        return await super().process_result(request, result)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Build the HTTP response with the media type chosen above."""
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type == GRAPHQL_RESPONSE:
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
        return response
