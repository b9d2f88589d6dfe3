"""Recognise `page(...)`-only queries and read their arguments before execution.

A query whose only root field is `page` (plus `__typename`) produces a
response that depends on nothing but the page content, the locale served and
the decisions. Reading its arguments up front (from the document the schema
executes, parsed once) lets the HTTP edge decide the page first, through the
request's `Delivery`, and reuse a response already produced for the same
decisions; the resolver then finds that same decision.

Only simple forms are recognised (string, enum, null, object and variable
values); anything else returns None and the query takes the ordinary path,
where Strawberry validates it and reports errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    ValueNode,
    VariableNode,
)

from delivery.request_facts import RequestContext
from resolvers.inputs import Device

_NOT_SIMPLE = object()
_CONTEXT_FIELDS = {"device", "country", "path", "referrer", "utm"}
_UTM_FIELDS = {"source", "medium", "campaign", "term", "content"}


@dataclass(frozen=True, slots=True)
class PageArgs:
    """The arguments of a `page` field, as the resolver receives them."""

    slug: str
    locale: str | None
    context: RequestContext | None


@dataclass(frozen=True, slots=True)
class _Shape:
    arguments: tuple[tuple[str, ValueNode], ...]
    defaults: tuple[tuple[str, ValueNode | None], ...]


def _shape(document: DocumentNode, operation_name: str | None) -> _Shape | None:
    operations = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
        elif not isinstance(definition, FragmentDefinitionNode):
            return None
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1:
        return None
    operation = operations[0]
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    page: FieldNode | None = None
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            return None
        if selection.name.value == "page" and page is None:
            page = selection
        elif selection.name.value != "__typename":
            return None
    if page is None:
        return None
    return _Shape(
        arguments=tuple((arg.name.value, arg.value) for arg in page.arguments or ()),
        defaults=tuple(
            (var.variable.name.value, var.default_value)
            for var in operation.variable_definitions or ()
        ),
    )


def _value(node: ValueNode | None, variables: dict[str, Any], defaults: dict[str, Any]) -> Any:
    if node is None or isinstance(node, NullValueNode):
        return None
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, EnumValueNode):
        return node.value
    if isinstance(node, VariableNode):
        name = node.name.value
        if name in variables:
            return variables[name]
        return _value(defaults.get(name), variables, defaults)
    if isinstance(node, ObjectValueNode):
        return {field.name.value: _value(field.value, variables, defaults) for field in node.fields}
    return _NOT_SIMPLE


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _context(value: Any) -> RequestContext | object | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= _CONTEXT_FIELDS:
        return _NOT_SIMPLE
    device = value.get("device")
    if device is not None and device not in Device.__members__:
        return _NOT_SIMPLE
    utm = value.get("utm")
    if utm is not None and (
        not isinstance(utm, dict)
        or not set(utm) <= _UTM_FIELDS
        or not all(_optional_str(v) for v in utm.values())
    ):
        return _NOT_SIMPLE
    if not all(_optional_str(value.get(key)) for key in ("country", "path", "referrer")):
        return _NOT_SIMPLE
    return RequestContext(
        device=Device[device].value if device is not None else None,
        country=value.get("country"),
        path=value.get("path"),
        referrer=value.get("referrer"),
        utm={key: item for key, item in (utm or {}).items() if item},
    )


def page_arguments(
    document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None
) -> PageArgs | None:
    """The `page` arguments of a page-only query, or None for any other query."""
    shape = _shape(document, operation_name)
    if shape is None:
        return None
    variables = variables or {}
    defaults = dict(shape.defaults)
    values = {name: _value(node, variables, defaults) for name, node in shape.arguments}
    if not set(values) <= {"slug", "locale", "context"}:
        return None
    slug, locale = values.get("slug"), values.get("locale")
    context = _context(values.get("context"))
    if not isinstance(slug, str) or not _optional_str(locale) or context is _NOT_SIMPLE:
        return None
    assert context is None or isinstance(context, RequestContext)
    return PageArgs(slug=slug, locale=locale, context=context)
