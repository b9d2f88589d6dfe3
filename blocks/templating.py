"""Templated text fields: editors' Jinja2 expressions, rendered in a sandbox.

A text field holding `{{ ... }}` or `{% ... %}` is a template, e.g.
`Welcome back, {{ visitor.traits.firstName | default("friend") }}`.
Editors' templates are untrusted, so they render in Jinja2's immutable
sandbox with:

* an allowlist of filters (:data:`ALLOWED_FILTERS`) and no globals but a
  bounded `range`;
* autoescaping for HTML fields (`rich_text.html`), plain text elsewhere;
* bounds on source size, output size, loop iterations, arithmetic that
  builds large values (`*`, `**`, `%`) and wall-clock time.

A template that fails to compile or render yields the variant's `fallback`
text for that field (else the text with its template tags removed), is
logged and counted in :data:`STATS`. A template that reads the visitor or
the request makes the block's content individual.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Final

from jinja2 import ChainableUndefined, Template, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from blocks.context import TargetingContext
from blocks.model import Page
from blocks.selection import Decision, PageDecision

logger = logging.getLogger(__name__)

MAX_SOURCE: Final = 4096
"""Longest template source accepted."""
MAX_OUTPUT: Final = 8192
"""Most characters a template may produce (also the largest value it may build)."""
MAX_ITERATIONS: Final = 10_000
"""Most loop iterations and calls one rendering may make."""
TIME_BUDGET: Final = 0.05
"""Seconds one rendering may take."""

ALLOWED_FILTERS: Final = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "float",
        "int",
        "join",
        "last",
        "length",
        "lower",
        "round",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
"""The filters editors may use; every other filter is unknown to the sandbox."""

#: Fields whose values are HTML (autoescaped); every other text field is plain text.
HTML_FIELDS: Final = frozenset({("rich_text", "html")})

_OPEN: Final = "*"
#: The names a template may read: nested dicts of known keys; `_OPEN` allows any key.
TEMPLATE_FIELDS: Final[Mapping[str, Any]] = {
    "visitor": {
        "id": None,
        "known": None,
        "audiences": None,
        "traits": {
            "pageViews": None,
            "clicks": None,
            "orders": None,
            "ltv": None,
            "firstSeen": None,
            "lastSeen": None,
            "minutesSinceLastSeen": None,
            "firstName": None,
            "lastName": None,
        },
        "cart": {"items": None, "value": None, "idleMinutes": None},
        "counts": _OPEN,
        "interests": _OPEN,
        "scores": _OPEN,
    },
    "request": {
        "device": None,
        "country": None,
        "locale": None,
        "path": None,
        "referrer": None,
        "utm": {"source": None, "medium": None, "campaign": None, "term": None, "content": None},
        "hour": None,
        "dayOfWeek": None,
    },
}

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_MARK = re.compile(r"\{\{|\{%")


class TemplateStats:
    """Counts template failures (thread-safe), for metrics and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0

    def count_failure(self) -> None:
        """Count one template that failed and fell back."""
        with self._lock:
            self.failures += 1


STATS: Final = TemplateStats()


class BudgetExceeded(SecurityError):
    """A template ran too long, looped too much or built too large a value."""


class _Budget:
    def __init__(self) -> None:
        self.deadline = time.monotonic() + TIME_BUDGET
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_ITERATIONS:
            raise BudgetExceeded("the template loops or calls too often")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded("the template took too long")


_budget = threading.local()


def _tick() -> None:
    budget: _Budget | None = getattr(_budget, "current", None)
    if budget is not None:
        budget.tick()


class _BoundedRange:
    """`range()` for templates: at most MAX_ITERATIONS items, each one counted."""

    def __init__(self, *args: int) -> None:
        self._values = range(*args)
        if len(self._values) > MAX_ITERATIONS:
            raise BudgetExceeded(f"range() is limited to {MAX_ITERATIONS} items")

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[int]:
        for value in self._values:
            _tick()
            yield value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with bounded arithmetic and a step budget."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse arithmetic that would build a huge value."""
        _tick()
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if _size(sized) and isinstance(times, int) and _size(sized) * times > MAX_OUTPUT:
                    raise BudgetExceeded("repetition would build too large a value")
        if operator == "**" and (
            not isinstance(right, (int, float)) or abs(right) > 64 or abs(left) > 2**32
        ):
            raise BudgetExceeded("exponent too large")
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly (never render empty) on an attribute the sandbox refuses."""
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Count every call against the budget."""
        _tick()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Count attribute reads; refuse every `_private` or `__dunder__` name outright."""
        _tick()
        if attribute.startswith("_"):
            raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Count item reads; refuse `_private` names as keys too."""
        _tick()
        if isinstance(argument, str) and argument.startswith("_"):
            raise SecurityError(f"access to attribute {argument!r} is not allowed in templates")
        return super().getitem(obj, argument)


def _environment(html: bool) -> _Sandbox:
    env = _Sandbox(autoescape=html, undefined=ChainableUndefined)
    env.filters = {name: f for name, f in env.filters.items() if name in ALLOWED_FILTERS}
    env.globals = {"range": _BoundedRange}
    return env


_ENVIRONMENTS: Final = {False: _environment(False), True: _environment(True)}


def is_template(value: Any) -> bool:
    """Whether a field value is a template (holds `{{` or `{%`)."""
    return isinstance(value, str) and _MARK.search(value) is not None


@lru_cache(maxsize=1024)
def compile_template(source: str, html: bool = False) -> Template:
    """Compile an editor's template; raises jinja2's TemplateError when it is not one."""
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"the template is longer than {MAX_SOURCE} characters")
    return _ENVIRONMENTS[html].from_string(source)


def strip_tags(source: str) -> str:
    """The template's literal text: tags removed, whitespace collapsed."""
    return " ".join(_TAG.sub(" ", source).split())


def render(source: str, variables: Mapping[str, Any], *, html: bool = False) -> str:
    """Render within every bound; raises TemplateError or SecurityError on failure."""
    template = compile_template(source, html)
    budget = _Budget()
    previous = getattr(_budget, "current", None)
    _budget.current = budget
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            budget.tick()
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise BudgetExceeded(f"the output is longer than {MAX_OUTPUT} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _budget.current = previous


# ---------------------------------------------------------------- analysis


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A problem in a template: `code` is `template.syntax` or `template.unknown-field`."""

    code: str
    message: str
    suggestion: str


def _chain(node: nodes.Node) -> list[str] | None:
    """`visitor.traits.firstName` (or with `[...]` string keys) as a list of names."""
    names: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            names.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            names.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            names.append(node.name)
            return names[::-1]
        else:
            return None


def _references(ast: nodes.Template) -> list[list[str]]:
    """The longest attribute chains the template reads from its variables."""
    found: list[list[str]] = []
    inner: set[int] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in inner:
            continue
        chain = _chain(node)
        if chain is None:
            continue
        # Mark the sub-nodes so `visitor.traits` is not reported after `visitor.traits.x`.
        child: Any = node
        while isinstance(child, (nodes.Getattr, nodes.Getitem)):
            child = child.node
            inner.add(id(child))
        found.append(chain)
    return found


def _assigned(ast: nodes.Template) -> set[str]:
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    return names | {"range", "loop"}


def _unknown(chain: list[str]) -> str | None:
    """The first unknown segment of a chain, as a dotted path, or None if all are known."""
    known: Any = TEMPLATE_FIELDS
    for depth, name in enumerate(chain):
        if known == _OPEN or known is None:
            return None
        if not isinstance(known, Mapping) or name not in known:
            return ".".join(chain[: depth + 1])
        known = known[name]
    return None


def _known_children(path: str) -> list[str]:
    known: Any = TEMPLATE_FIELDS
    for name in path.split(".")[:-1]:
        known = known.get(name) if isinstance(known, Mapping) else None
    return sorted(known) if isinstance(known, Mapping) else []


def template_problems(source: str, *, html: bool = False) -> list[TemplateProblem]:
    """Why the template would fail or read something that does not exist."""
    try:
        compile_template(source, html)
        ast = _ENVIRONMENTS[html].parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        return [
            TemplateProblem(
                "template.syntax",
                f"the template does not compile{where}: {exc.message or exc}",
                "fix the {{ }} / {% %} syntax; filters allowed: "
                + ", ".join(sorted(ALLOWED_FILTERS)),
            )
        ]
    problems: list[TemplateProblem] = []
    local = _assigned(ast)
    for chain in _references(ast):
        if chain[0] in local:
            continue
        unknown = _unknown(chain)
        if unknown is not None:
            choices = _known_children(unknown)
            problems.append(
                TemplateProblem(
                    "template.unknown-field",
                    f"the template reads {unknown!r}, which is not a profile or request field",
                    f"use one of: {', '.join(choices)}" if choices else "",
                )
            )
    return problems


@lru_cache(maxsize=1024)
def reads_visitor(source: str, html: bool = False) -> bool:
    """Whether the template reads the visitor or the request (its output is individual)."""
    try:
        ast = _ENVIRONMENTS[html].parse(source)
    except TemplateError:
        return False
    local = _assigned(ast)
    return any(
        node.name in TEMPLATE_FIELDS and node.name not in local for node in ast.find_all(nodes.Name)
    )


# ---------------------------------------------------------------- rendering fields


def template_variables(context: TargetingContext) -> dict[str, Any]:
    """What templates see: `visitor` (the profile) and `request` (the request's facts)."""
    attributes = context.attributes
    visitor = {
        key: attributes[key]
        for key in ("id", "known", "audiences", "traits", "cart", "counts", "interests", "scores")
        if key in attributes
    }
    request = {
        key: attributes.get(key)
        for key in ("device", "country", "locale", "path", "referrer", "utm", "hour", "dayOfWeek")
    }
    return {"visitor": visitor, "request": request}


@dataclass(frozen=True, slots=True)
class RenderedFields:
    """A variant's fields with templates rendered, and what the rendering read."""

    fields: Mapping[str, Any]
    templated: bool = False
    individual: bool = False
    failures: tuple[str, ...] = field(default_factory=tuple)


def render_fields(
    block_type: str,
    fields: Mapping[str, Any],
    fallback: Mapping[str, str],
    variables: Mapping[str, Any],
) -> RenderedFields:
    """Render every templated string in `fields` (nested too); failures fall back."""
    state = {"templated": False, "individual": False}
    failures: list[str] = []

    def visit(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {k: visit(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(item, path) for item in value]
        if not is_template(value):
            return value
        state["templated"] = True
        html = (block_type, path) in HTML_FIELDS
        if reads_visitor(value, html):
            state["individual"] = True
        try:
            return render(value, variables, html=html)
        except Exception as exc:  # untrusted input: any failure falls back
            STATS.count_failure()
            failures.append(path)
            logger.warning("template in field %r failed, fallback shown: %s", path, exc)
            return fallback.get(path, strip_tags(value))

    rendered = visit(fields, "")
    return RenderedFields(
        fields=rendered,
        templated=state["templated"],
        individual=state["individual"],
        failures=tuple(failures),
    )


def render_page(
    page: Page, decision: PageDecision, context: TargetingContext, locale: str | None
) -> tuple[PageDecision, tuple[RenderedFields, ...]]:
    """Every chosen variant's fields rendered for `context`.

    A block whose templates read the visitor gets the `individual` scope, so
    caches never share its content across visitors.
    """
    variables = template_variables(context)
    rendered: list[RenderedFields] = []
    decisions: list[Decision] = []
    for block, record in zip(page.blocks, decision.decisions, strict=True):
        variant = block.variant(record.variant_id)
        result = render_fields(block.type, variant.fields_for(locale), variant.fallback, variables)
        rendered.append(result)
        decisions.append(replace(record, scope="individual") if result.individual else record)
    return replace(decision, decisions=tuple(decisions)), tuple(rendered)
