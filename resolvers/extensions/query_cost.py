"""Refuse queries too large to validate or execute, in time linear in the document.

graphql-core's validation rules and Strawberry's depth limiter walk every
path through the fragments: 40 fragments that each spread the next one twice
are a 2.6 KB query with 2^40 paths, and walking them froze the event loop. So
this analysis runs *before* validation, expands each fragment once (its
figures are memoized, then combined arithmetically wherever it is spread) and
bounds, per operation:

- fields: field selections once fragments are expanded;
- aliases: aliased fields once fragments are expanded;
- directives: directive uses once fragments are expanded;
- depth: the deepest selection (introspection has its own, larger, bound,
  because the standard introspection query nests `ofType` eight deep);
- cost: each field costs 1 (`__typename` nothing, `page` more, since it is a
  whole page decision), and a field returning a list multiplies the cost of
  what it selects by an assumed list size;
- introspection: how many `__schema` / `__type` fields one request may ask
  for (each is a walk of the whole schema).

The parse itself is bounded by `MAX_QUERY_TOKENS` (graphql-core's
`max_tokens`, see `parse_cache`), so the document this walks is never large.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.extensions import SchemaExtension

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The bounds one operation must stay within."""

    max_depth: int = 12
    max_fields: int = 500
    max_aliases: int = 30
    max_directives: int = 50
    max_cost: int = 5000
    max_introspection: int = 2
    max_introspection_depth: int = 16
    #: What a list field is assumed to hold when its size is unknown.
    list_size: int = 10
    #: `Type.field` → the cost of resolving it once (default 1).
    field_costs: Mapping[str, int] = field(default_factory=lambda: {"Query.page": 10})


class QueryTooComplex(GraphQLError):
    """The query exceeds one of the `QueryLimits`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "QUERY_TOO_COMPLEX"})


@dataclass(slots=True)
class _Figures:
    """What a selection set adds up to; all counts are exact (Python integers)."""

    fields: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0
    introspection: int = 0
    depth: int = 0
    introspection_depth: int = 0

    def add(self, other: _Figures, times: int = 1) -> None:
        """Add `other` occurring `times` times (a list multiplies only cost)."""
        self.fields += other.fields
        self.aliases += other.aliases
        self.directives += other.directives
        self.cost += other.cost * times
        self.introspection += other.introspection
        self.depth = max(self.depth, other.depth)
        self.introspection_depth = max(self.introspection_depth, other.introspection_depth)


def _unwrap(type_: GraphQLOutputType) -> tuple[GraphQLNamedType, int]:
    """The named type under the wrappers, and how many lists wrap it."""
    lists = 0
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        if isinstance(type_, GraphQLList):
            lists += 1
        type_ = type_.of_type
    return type_, lists


class _Analysis:
    """One document's walk; fragments are figured once per (name, introspection)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, limits: QueryLimits) -> None:
        self.schema = schema
        self.limits = limits
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._memo: dict[tuple[str, bool], _Figures] = {}
        self._active: set[tuple[str, bool]] = set()

    def operation(self, operation: OperationDefinitionNode) -> _Figures:
        """The figures of one operation."""
        root = self.schema.get_root_type(operation.operation)
        return self.selection_set(operation.selection_set, root, introspection=False)

    def selection_set(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        *,
        introspection: bool,
    ) -> _Figures:
        """Sum the selections; depth is the deepest of them."""
        # A fragment on `__Type` is introspection wherever it is spread (or not).
        introspection = introspection or (parent is not None and parent.name.startswith("__"))
        total = _Figures()
        for selection in selection_set.selections:
            total.directives += len(selection.directives or ())
            if isinstance(selection, FieldNode):
                total.add(self.field(selection, parent, introspection=introspection))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total.add(
                    self.selection_set(selection.selection_set, inner, introspection=introspection)
                )
            elif isinstance(selection, FragmentSpreadNode):
                total.add(self.fragment(selection.name.value, introspection=introspection))
        return total

    def fragment(self, name: str, *, introspection: bool) -> _Figures:
        """A fragment's figures, computed once; an unknown or cyclic spread adds nothing.

        Validation reports unknown fragments and cycles precisely; here they only
        must not loop.
        """
        key = (name, introspection)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        definition = self.fragments.get(name)
        if definition is None or key in self._active:
            return _Figures()
        self._active.add(key)
        try:
            parent = self.schema.get_type(definition.type_condition.name.value)
            figures = self.selection_set(
                definition.selection_set, parent, introspection=introspection
            )
            figures.directives += len(definition.directives or ())
        finally:
            self._active.discard(key)
        self._memo[key] = figures
        return figures

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, *, introspection: bool
    ) -> _Figures:
        """One field: its own cost, plus its selections times its list size."""
        name = node.name.value
        figures = _Figures(fields=1, aliases=1 if node.alias is not None else 0)
        if name == "__typename":
            figures.depth = 1
            return figures
        entering = name in INTROSPECTION_ROOTS
        inside = introspection or entering
        if entering:
            figures.introspection = 1
        return_type, lists = self._return_type(name, parent)
        own = 1 if parent is None else self.limits.field_costs.get(f"{parent.name}.{name}", 1)
        figures.cost = own
        if node.selection_set is not None:
            child = self.selection_set(node.selection_set, return_type, introspection=inside)
            # The schema's size bounds introspection lists, not the client: no multiplier.
            times = 1 if inside else self.limits.list_size**lists
            figures.add(child, times)
        if inside:
            figures.introspection_depth += 1
            figures.depth = 0
        else:
            figures.depth += 1
        return figures

    def _return_type(
        self, name: str, parent: GraphQLNamedType | None
    ) -> tuple[GraphQLNamedType | None, int]:
        if name == "__schema":
            return _unwrap(SchemaMetaFieldDef.type)
        if name == "__type":
            return _unwrap(TypeMetaFieldDef.type)
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return None, 0
        definition = parent.fields.get(name)
        if definition is None:
            return None, 0  # validation names the unknown field
        return _unwrap(definition.type)


def _check(figures: _Figures, limits: QueryLimits, operation: str) -> str | None:
    """The first limit `figures` exceed, as a message for the client."""
    checks = (
        (figures.depth, limits.max_depth, "is nested {} levels deep; at most {} are allowed"),
        (
            figures.introspection_depth,
            limits.max_introspection_depth,
            "nests introspection {} levels deep; at most {} are allowed",
        ),
        (
            figures.introspection,
            limits.max_introspection,
            "asks for __schema or __type {} times; at most {} are allowed",
        ),
        (figures.aliases, limits.max_aliases, "uses {} aliases; at most {} are allowed"),
        (figures.directives, limits.max_directives, "uses {} directives; at most {} are allowed"),
        (
            figures.fields,
            limits.max_fields,
            "selects {} fields once fragments are expanded; at most {} are allowed",
        ),
        (
            figures.cost,
            limits.max_cost,
            "has an estimated cost of {} (lists count {} items each); at most {} is allowed",
        ),
    )
    for value, limit, template in checks:
        if value > limit:
            shown = _short(value)
            if "{} items" in template:
                return f"{operation} " + template.format(shown, limits.list_size, limit)
            return f"{operation} " + template.format(shown, limit)
    return None


def _short(value: int) -> str:
    """Huge counts (2^40 paths) as digits the client can read."""
    text = str(value)
    return text if len(text) <= 15 else f"about 10^{len(text) - 1}"


def analyze(schema: GraphQLSchema, document: DocumentNode, limits: QueryLimits) -> str | None:
    """Why `document` is refused, or None when every operation is within `limits`."""
    analysis = _Analysis(schema, document, limits)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = f"Operation {definition.name.value!r}" if definition.name else "The query"
            problem = _check(analysis.operation(definition), limits, name)
            if problem is not None:
                return problem
    # A fragment no operation spreads is still validated: bound it too.
    for name in analysis.fragments:
        problem = _check(analysis.fragment(name, introspection=False), limits, f"Fragment {name!r}")
        if problem is not None:
            return problem
    return None


class QueryCost(SchemaExtension):
    """Refuse over-limit documents before validation."""

    def __init__(self, limits: QueryLimits) -> None:
        self.limits = limits

    def on_validate(self) -> Iterator[None]:
        """Refuse before any validation rule walks the document."""
        context = self.execution_context
        if context.graphql_document is not None:
            problem = analyze(context.schema._schema, context.graphql_document, self.limits)
            if problem is not None:
                raise QueryTooComplex(f"{problem}.")
        yield


def query_cost(limits: QueryLimits) -> Callable[[], SchemaExtension]:
    """An extension factory bounding every operation by `limits`."""

    def factory() -> SchemaExtension:
        return QueryCost(limits)

    return factory
