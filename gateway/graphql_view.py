"""Strawberry's ASGI view with Tessera's context and GraphQL-over-HTTP statuses.

Per the GraphQL-over-HTTP spec, a client that accepts
`application/graphql-response+json` gets that media type, and a request that
fails before execution (syntax, validation, variable coercion) answers 400.
Legacy `application/json` clients get 200 with the errors in the body.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway.auth import bearer_token
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
