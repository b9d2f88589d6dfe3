"""Parse each query text once, capped in tokens, for the schema and the HTTP edge.

The `/graphql` endpoint reads a document before execution (is it a query or
a mutation, does it ask only for `page`) and Strawberry parses it for
execution: both go through `parse_document`, one bounded LRU, so a query is
parsed once however many times it is looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from graphql import DocumentNode, parse
from strawberry.extensions import SchemaExtension

#: Bounded: the key is the query text, which clients control.
DOCUMENT_CACHE_SIZE = 512


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def parse_document(query: str, max_tokens: int) -> DocumentNode:
    """The parsed document (cached); GraphQLSyntaxError past `max_tokens` tokens."""
    return parse(query, max_tokens=max_tokens)


class ParseCache(SchemaExtension):
    """Strawberry's parse step through `parse_document`."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def on_parse(self) -> Iterator[None]:
        """Hand Strawberry the cached document (graphql-core raises a syntax error)."""
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = parse_document(context.query, self.max_tokens)
        yield
