"""The Strawberry schema, with its cross-cutting extensions."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from delivery.errors import PublicError
from resolvers.audiences_admin import AudienceMutation, AudienceQuery
from resolvers.content_health import ContentHealthQuery
from resolvers.events import EventMutation
from resolvers.experiments import ExperimentQuery
from resolvers.extensions.parse_cache import DOCUMENT_CACHE_SIZE, ParseCache
from resolvers.extensions.query_cost import QueryLimits, query_cost
from resolvers.gdpr import GdprMutation, GdprQuery
from resolvers.mutation import Mutation
from resolvers.query import Query
from resolvers.types import BLOCK_TYPES

# Root types composed from one class per concern.
RootQuery = merge_types(
    "Query", (Query, AudienceQuery, ContentHealthQuery, GdprQuery, ExperimentQuery)
)
RootMutation = merge_types("Mutation", (Mutation, AudienceMutation, EventMutation, GdprMutation))

MAX_QUERY_TOKENS = 3000


def _should_mask(error: GraphQLError) -> bool:
    """Mask unexpected exceptions; keep GraphQL's own and Tessera's public errors."""
    original = error.original_error
    return original is not None and not isinstance(original, (PublicError, GraphQLError))


class TesseraSchema(strawberry.Schema):
    """Logs only unexpected errors: a client's bad query is not a server incident."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log errors that will be masked; the client sees everything else."""
        unexpected = [error for error in errors if _should_mask(error)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(
    limits: QueryLimits | None = None,
    *,
    max_tokens: int = MAX_QUERY_TOKENS,
    introspection: bool = True,
) -> strawberry.Schema:
    """The public schema; extensions are factories so each request gets fresh ones."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParseCache(max_tokens),
        # Before validation: it refuses a document before any rule walks it.
        query_cost(limits or QueryLimits()),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: MaskErrors(
            should_mask_error=_should_mask,
            error_message="Internal error: the request could not be completed.",
        ),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return TesseraSchema(
        query=RootQuery, mutation=RootMutation, types=BLOCK_TYPES, extensions=extensions
    )


schema = build_schema()
