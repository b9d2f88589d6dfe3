"""Templated text fields: editors' Jinja2 expressions, rendered in a sandbox.

A text field holding `{{ ... }}` or `{% ... %}` is a template, e.g.
`Welcome back, {{ visitor.traits.firstName | default("friend") }}`.
Editors' templates are untrusted, so they compile and render in the bounded
sandbox of :mod:`blocks.sandbox` (allowlisted filters and methods, bounded
size of every value, nesting, steps, calls and time), with autoescaping for
HTML fields (`rich_text.html`) and plain text elsewhere.

Templates see only the documented fields (:data:`TEMPLATE_FIELDS`), as
read-only :class:`Fields`: never the rest of the profile.

A template that fails to compile or render yields the variant's `fallback`
text for that field (else the text with its template tags removed), is
logged and counted in :data:`STATS`. A template that reads the visitor or
the request makes the block's content individual.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Final

from jinja2 import Template, TemplateError, nodes
from jinja2.exceptions import SecurityError

from blocks import sandbox
from blocks.context import TargetingContext
from blocks.model import TEMPLATE_MARK, Page
from blocks.sandbox import ALLOWED_FILTERS, MAX_OUTPUT, BudgetExceeded, TimeBudgetExceeded
from blocks.selection import Decision, PageDecision

__all__ = [
    "ALLOWED_FILTERS",
    "HTML_FIELDS",
    "MAX_OUTPUT",
    "MAX_PAGE_OUTPUT",
    "PAGE_TIME_BUDGET",
    "STATS",
    "TEMPLATE_FIELDS",
    "Fields",
    "PageBudget",
    "RenderedFields",
    "TemplateProblem",
    "compile_template",
    "is_template",
    "reads_visitor",
    "render",
    "render_fields",
    "render_page",
    "strip_tags",
    "template_problems",
    "template_variables",
]

logger = logging.getLogger(__name__)

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
        "segment": {"id": None, "label": None},
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


def is_template(value: Any) -> bool:
    """Whether a field value is a template (holds `{{` or `{%`)."""
    return isinstance(value, str) and TEMPLATE_MARK.search(value) is not None


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template | TemplateError:
    # Failures are cached too: a broken template is on every page view until it is fixed,
    # and compiling one of MAX_SOURCE characters takes a few tens of milliseconds.
    try:
        return sandbox.compile_template(source, html)
    except TemplateError as exc:
        return exc


def compile_template(source: str, html: bool = False) -> Template:
    """Compile an editor's template; raises jinja2's TemplateError when it is not one."""
    compiled = _compiled(source, html)
    if isinstance(compiled, TemplateError):
        raise copy.copy(compiled)  # a fresh traceback each time, not one growing forever
    return compiled


def strip_tags(source: str) -> str:
    """The template's literal text: tags removed, whitespace collapsed."""
    return " ".join(_TAG.sub(" ", source).split())


def render(source: str, variables: Mapping[str, Any], *, html: bool = False) -> str:
    """Render within every bound; raises TemplateError (mostly) on failure."""
    return sandbox.render_compiled(compile_template(source, html), variables)


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
    """Why the template would fail, read something that does not exist, or break a limit."""
    try:
        compile_template(source, html)
        ast = sandbox.parse_template(source, html)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        return [
            TemplateProblem(
                "template.syntax",
                f"the template does not compile{where}: {exc.message or exc}",
                "simplify the nesting: fewer brackets, operators or tags inside one another"
                if isinstance(exc, sandbox.TemplateNestingError)
                else "fix the {{ }} / {% %} syntax; filters allowed: "
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
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Getattr) and call.node.attr in sandbox.REFUSED_METHODS:
            problems.append(
                TemplateProblem(
                    "template.limit",
                    f"the template calls the method {call.node.attr!r} (line {call.lineno}), "
                    "which templates may not use",
                    "use the filters and methods listed in docs/editors.md",
                )
            )
    if not problems:
        problems.extend(_trial(source, html))
    return problems


def _trial(source: str, html: bool) -> list[TemplateProblem]:
    """Render once for a visitor and a request with no data: limits it breaks regardless."""
    try:
        render(source, {}, html=html)
    except TimeBudgetExceeded:
        return []  # the machine may just be busy: not the editor's problem to fix
    except SecurityError as exc:
        return [
            TemplateProblem(
                "template.limit",
                f"the template fails in the sandbox: {exc.message or exc}",
                "simplify the template; see the limits in docs/editors.md",
            )
        ]
    except Exception:  # untrusted input: other failures depend on the visitor's data
        return []
    return []


@lru_cache(maxsize=1024)
def reads_visitor(source: str, html: bool = False) -> bool:
    """Whether the template reads the visitor or the request (its output is individual)."""
    try:
        ast = sandbox.parse_template(source, html)
    except TemplateError:
        return False  # it cannot render: the static fallback is shown
    local = _assigned(ast)
    return any(
        node.name in TEMPLATE_FIELDS and node.name not in local for node in ast.find_all(nodes.Name)
    )


# ---------------------------------------------------------------- rendering fields


class Fields:
    """Documented fields of the visitor or the request, read-only, for templates.

    Only `.name` and `["name"]` reads: no methods (`items()`, `values()`...)
    and no other keys, so a template reaches exactly what TEMPLATE_FIELDS lists.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return repr(self._values)


def _documented(value: Any, known: Any) -> Any:
    """`value` restricted to the documented fields `known` (a TEMPLATE_FIELDS subtree)."""
    if known is None:
        return value
    if known == _OPEN:
        # Any key is documented here (interests, counts, scores); a copy, never the profile's.
        return dict(value) if isinstance(value, Mapping) else value
    present = value if isinstance(value, Mapping) else {}
    return Fields(
        {key: _documented(present[key], sub) for key, sub in known.items() if key in present}
    )


def template_variables(context: TargetingContext) -> dict[str, Any]:
    """What templates see: `visitor` and `request`, their documented fields only."""
    attributes = context.attributes
    return {name: _documented(attributes, known) for name, known in TEMPLATE_FIELDS.items()}


@dataclass(frozen=True, slots=True)
class RenderedFields:
    """A variant's fields with templates rendered, and what the rendering read."""

    fields: Mapping[str, Any]
    templated: bool = False
    individual: bool = False
    failures: tuple[str, ...] = field(default_factory=tuple)
    #: What the computed fields depend on, when cheaper to compare than the fields
    #: themselves (a recommendations block: its products, catalogue and model).
    key: Hashable | None = None

    def identity(self) -> Hashable:
        """What a cached response showing these fields must match."""
        if self.key is not None:
            return self.key
        return json.dumps(self.fields, sort_keys=True, default=str)


MAX_PAGE_OUTPUT: Final = 8 * MAX_OUTPUT
"""Most characters all the templates of one page may produce together."""
PAGE_TIME_BUDGET: Final = 4 * sandbox.TIME_BUDGET
"""Seconds of CPU time all the templates of one page may take to render together."""


class PageBudget:
    """What all the templates of one page may spend together: output and rendering time.

    Each template is bounded on its own; this bounds a page of many templated
    fields. Once it is spent, the page's remaining templates show their fallback.
    Compiling is not counted: it happens once per template, failures included.
    """

    def __init__(self) -> None:
        self.output = 0
        self.seconds = 0.0
        self.wall_seconds = 0.0

    def check(self) -> None:
        """Raise BudgetExceeded when the page's templates have spent their output or time."""
        if self.output > MAX_PAGE_OUTPUT:
            raise BudgetExceeded(
                f"the page's templates produce more than {MAX_PAGE_OUTPUT:,} characters together"
            )
        if (
            self.seconds > PAGE_TIME_BUDGET
            or self.wall_seconds > sandbox.MAX_WALL_BUDGETS * PAGE_TIME_BUDGET
        ):
            raise BudgetExceeded(
                f"the page's templates took longer than {PAGE_TIME_BUDGET * 1000:.0f} ms together"
            )

    def render(self, source: str, variables: Mapping[str, Any], html: bool) -> str:
        """Render one template of the page, within the page's budget and its own."""
        template = compile_template(source, html)
        self.check()
        # CPU time, as each template's own budget: waiting for a core costs nothing
        # here, up to the same bound on wall-clock time (the event loop waits too).
        started, wall_started = time.thread_time(), time.monotonic()
        try:
            text = sandbox.render_compiled(template, variables)
        finally:
            self.seconds += time.thread_time() - started
            self.wall_seconds += time.monotonic() - wall_started
        self.output += len(text)
        self.check()
        return text


def render_fields(
    block_type: str,
    fields: Mapping[str, Any],
    fallback: Mapping[str, str],
    variables: Mapping[str, Any],
    budget: PageBudget | None = None,
) -> RenderedFields:
    """Render every templated string in `fields` (nested too); failures fall back."""
    state = {"templated": False, "individual": False}
    failures: list[str] = []
    spent = budget or PageBudget()

    def visit(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {k: visit(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(item, path) for item in value]
        if not is_template(value):
            return value
        state["templated"] = True
        html = (block_type, path) in HTML_FIELDS
        try:
            if reads_visitor(value, html):
                state["individual"] = True
            return spent.render(value, variables, html)
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
    budget = PageBudget()
    rendered: list[RenderedFields] = []
    decisions: list[Decision] = []
    for block, record in zip(page.blocks, decision.decisions, strict=True):
        variant = block.variant(record.variant_id)
        fields = variant.fields_for(locale)
        if not variant.templated:
            # Nothing to render: the parsed fields are shared, read-only, by every request.
            rendered.append(RenderedFields(fields=fields))
            decisions.append(record)
            continue
        result = render_fields(block.type, fields, variant.fallback, variables, budget)
        rendered.append(result)
        decisions.append(replace(record, scope="individual") if result.individual else record)
    return replace(decision, decisions=tuple(decisions)), tuple(rendered)
