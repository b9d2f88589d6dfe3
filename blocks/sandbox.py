"""The bounded Jinja2 sandbox editors' templates compile and render in.

Editors' templates are untrusted (docs/editors.md, "Personalised text"), so on
top of Jinja2's immutable sandbox (no private attributes, no mutation of lists
and dicts) every operation is bounded *before* it runs:

* compiling: at most :data:`MAX_SOURCE` characters, nested at most
  :data:`MAX_NESTING` levels (a deeper template is refused with a
  :class:`TemplateNestingError` instead of exhausting the interpreter's stack);
* every value a template builds (`~`, `+`, `*`, filters, string methods, the
  output of macros and `{% set %}` blocks, printed values) holds at most
  :data:`MAX_OUTPUT` characters, and one rendering builds at most
  :data:`MAX_BUILT` characters in all;
* numbers hold at most :data:`MAX_NUMBER_BITS` bits; exponents and rounding
  precisions are small;
* loop iterations, calls and attribute reads count against :data:`MAX_STEPS`,
  macros nest at most :data:`MAX_CALL_DEPTH` calls deep, and a rendering may
  take :data:`TIME_BUDGET` seconds;
* only the filters in :data:`ALLOWED_FILTERS`, an allowlist of methods of
  built-in values (:data:`ALLOWED_METHODS`) and one global, a bounded `range`.

Every refusal is a :class:`jinja2.TemplateError` whose message names the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sized,
    ValuesView,
)
from datetime import date, timedelta
from datetime import time as time_of_day
from functools import wraps
from typing import Any, Final, cast

from jinja2 import ChainableUndefined, Template, TemplateError, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import BlockReference, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# ---------------------------------------------------------------- errors
#
# TemplateError (jinja2)
# ├── SecurityError (jinja2): the sandbox refused an attribute, method or operator
# │   └── BudgetExceeded: a rendering exceeded a limit (size, steps, calls, numbers)
# │       └── TimeBudgetExceeded: ... the time limit (depends on the machine's load)
# └── TemplateNestingError: the template nests too deeply to compile


class BudgetExceeded(SecurityError):
    """A template looped or called too often, or would build too large a value."""


class TimeBudgetExceeded(BudgetExceeded):
    """A template took longer than TIME_BUDGET to render."""


class TemplateNestingError(TemplateError):
    """A template nests brackets, operators or tags deeper than MAX_NESTING."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


# ---------------------------------------------------------------- limits

MAX_SOURCE: Final = 4096
"""Longest template source accepted."""
MAX_NESTING: Final = 32
"""Deepest nesting of expressions and tags (the depth of the parsed template) accepted."""
MAX_OUTPUT: Final = 8192
"""Most characters a template may produce, and the largest value it may build."""
MAX_BUILT: Final = 8 * MAX_OUTPUT
"""Most characters one rendering may build in all, every built value counted once."""
MAX_NUMBER_BITS: Final = 4096
"""Largest integer (in bits) a product may build (about 1,233 decimal digits)."""
MAX_STEPS: Final = 10_000
"""Most loop iterations, calls and attribute reads one rendering may make."""
MAX_ITERATIONS: Final = MAX_STEPS
"""The same budget under its former name."""
MAX_CALL_DEPTH: Final = 16
"""Deepest nesting of macro (and block) calls."""
MAX_PRECISION: Final = 32
"""Largest `round` precision (either sign)."""
TIME_BUDGET: Final = 0.05
"""Seconds of CPU time one rendering may take."""
MAX_WALL_BUDGETS: Final = 4
"""However starved the machine, a rendering stops after this many budgets of wall-clock time.

It runs on the event loop: the bound is also how long it may hold every other request."""

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

#: Filters that turn their arguments into text: each argument is weighed first.
_TEXT_FILTERS: Final = frozenset(
    {"capitalize", "e", "escape", "lower", "string", "striptags", "title", "trim", "truncate"}
    | {"upper", "wordcount"}
)

_STR_METHODS: Final = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)
ALLOWED_METHODS: Final[tuple[tuple[tuple[type, ...], frozenset[str]], ...]] = (
    # Markup is a str; `center`, `ljust`, `zfill`, `expandtabs`, `format`... are not here:
    # they build strings as large as an argument asks.
    ((str,), _STR_METHODS),
    ((dict,), frozenset({"get", "items", "keys", "values"})),
    ((list, tuple), frozenset({"count", "index"})),
    # No `to_bytes` (a buffer of any size) nor `from_bytes`.
    ((int, float), frozenset({"bit_length", "is_integer"})),
    (
        (date, time_of_day),
        frozenset({"date", "isoformat", "isoweekday", "strftime", "time", "weekday"}),
    ),
    ((timedelta,), frozenset({"total_seconds"})),
)
"""Methods of built-in values a template may call; a method of any other object is refused."""

REFUSED_METHODS: Final = frozenset(
    name
    for kinds, _ in ALLOWED_METHODS
    for kind in kinds
    for name in dir(kind)
    if not name.startswith("_") and callable(getattr(kind, name))
) - frozenset().union(*(allowed for _, allowed in ALLOWED_METHODS))
"""Method names of built-in values that no template may call (`center`, `format`...)."""

#: Template runtime objects whose methods are the template language itself.
_RUNTIME_TYPES: Final = (LoopContext, BlockReference)


# ---------------------------------------------------------------- budget


class _Budget:
    """What one rendering has spent: steps, characters built, call depth and time.

    Time is the thread's CPU time: on a starved machine the wall clock runs on
    while the thread waits for a core, which is not the template's doing (a
    returning visitor's greeting fell back at load 5-13). Reading the thread's
    CPU clock is a system call (~0.6 us), so each step reads the cheap wall
    clock and the CPU clock only once the wall clock says the budget is spent.
    The wall clock still bounds a rendering at `MAX_WALL_BUDGETS` budgets.
    """

    def __init__(self) -> None:
        started = time.monotonic()
        self.cpu_started = time.thread_time()
        self.deadline = started + TIME_BUDGET
        self.wall_deadline = started + MAX_WALL_BUDGETS * TIME_BUDGET
        self.steps = 0
        self.built = 0
        self.depth = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(f"the template loops or calls more than {MAX_STEPS:,} times")
        if time.monotonic() > self.deadline:
            self._check_time()

    def _check_time(self) -> None:
        now = time.monotonic()
        spent = time.thread_time() - self.cpu_started
        if spent >= TIME_BUDGET or now > self.wall_deadline:
            raise TimeBudgetExceeded(
                f"the template took too long to render (more than {TIME_BUDGET * 1000:.0f} ms)"
            )
        # The thread waited for a core: the CPU time left is the new allowance.
        self.deadline = now + (TIME_BUDGET - spent)


_local = threading.local()


def _current() -> _Budget | None:
    budget: _Budget | None = getattr(_local, "budget", None)
    return budget


def _tick() -> None:
    budget = _current()
    if budget is not None:
        budget.tick()


def _build(size: int, what: str) -> None:
    """Account for a value of `size` characters before `what` builds it; refuse too large."""
    if size > MAX_OUTPUT:
        raise BudgetExceeded(f"{what} would build more than {MAX_OUTPUT:,} characters")
    budget = _current()
    if budget is not None:
        budget.built += size
        if budget.built > MAX_BUILT:
            raise BudgetExceeded(f"the template builds more than {MAX_BUILT:,} characters in all")


# ---------------------------------------------------------------- weighing values

# Not ranges: `str(range(9000))` is short, and only `join` goes through their items.
_SEQUENCES: Final = (list, tuple, set, frozenset)
_VIEWS: Final[tuple[type, ...]] = (KeysView, ValuesView, ItemsView)


def _digits(number: int) -> int:
    # An upper bound from the bit length: str() of a huge int is itself slow.
    return number.bit_length() * 30103 // 100000 + 2


def weight(value: Any, limit: int = MAX_OUTPUT) -> int:
    """An upper bound on len(str(value)), exact for strings; `limit + 1` once past `limit`.

    Containers are weighed by their items (shared items count each time they
    appear), without building their text, and without recursion.
    """
    total = 0
    # (value, True when it is an item of a container: then repr() is what str() shows)
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, nested = stack.pop()
        if isinstance(item, str):
            if not nested:
                total += len(item)
            elif len(item) > limit:
                return limit + 1
            else:
                total += len(repr(item))
        elif isinstance(item, Undefined):
            pass
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int):
            total += _digits(item)
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping):
            total += 2
            for key, entry in item.items():
                total += 4
                stack.append((key, True))
                stack.append((entry, True))
                if total > limit:
                    return limit + 1
        elif isinstance(item, _SEQUENCES + _VIEWS):
            total += 16  # brackets, or the name of a set or view
            for entry in cast(Iterable[Any], item):
                total += 2
                stack.append((entry, True))
                if total > limit:
                    return limit + 1
        else:
            total += len(str(item))
        if total > limit:
            return limit + 1
    return total


def _take(items: Any, what: str) -> list[Any]:
    """An iterable as a list (one step); refused past MAX_OUTPUT items."""
    _tick()
    size = len(items) if isinstance(items, Sized) else 0
    taken: list[Any] = []
    for item in items:
        taken.append(item)
        if size > MAX_OUTPUT or len(taken) > MAX_OUTPUT:
            raise BudgetExceeded(f"{what} would join more than {MAX_OUTPUT:,} items")
    return taken


def _joined_size(items: list[Any], separator: Any) -> int:
    size = weight(separator) * max(len(items) - 1, 0)
    for item in items:
        size += weight(item)
        if size > MAX_OUTPUT:
            return MAX_OUTPUT + 1
    return size


# ---------------------------------------------------------------- bounded values


class _BoundedRange:
    """`range()` for templates: at most MAX_STEPS items, each one counted."""

    def __init__(self, *args: int) -> None:
        self._values = range(*args)
        try:
            size = len(self._values)
        except OverflowError:
            size = MAX_STEPS + 1
        if size > MAX_STEPS:
            raise BudgetExceeded(f"range() is limited to {MAX_STEPS:,} items")

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[int]:
        for value in self._values:
            _tick()
            yield value

    def __repr__(self) -> str:
        return repr(self._values)


class _Counted:
    """A `{% for %}` loop's iterable: every iteration counts as a step."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __len__(self) -> int:
        # LoopContext asks for the length; without one it lists the items (counted too).
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            _tick()
            yield item


def _count_loop(items: Any) -> Any:
    """What a `{% for %}` loop iterates: `range()` counts its own items already."""
    return items if isinstance(items, _BoundedRange) else _Counted(items)


def _finalize(value: Any) -> Any:
    """Every printed value (`{{ ... }}`) is weighed before it becomes text."""
    _build(weight(value), "printing this value")
    return value


def _concat_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """`a ~ b ~ ...`: the parts are weighed before they are joined."""
    _tick()
    _build(sum(weight(part) for part in parts), "`~`")
    return parts


def _concat_output(parts: Iterable[str]) -> str:
    """What a macro, a `{% set %}` or `{% filter %}` block or a block call produced."""
    chunks = list(parts)
    _build(sum(len(chunk) for chunk in chunks), "a macro, block or {% set %} capture")
    return "".join(chunks)


def _checked_literal(value: Any) -> Any:
    """A list, tuple or dict written in the template: weighed when it is made.

    A literal of references costs nothing to build, but nesting them doubles
    their size at each level: comparing, printing or joining such a value
    would walk all of it.
    """
    _tick()
    if weight(value) > MAX_OUTPUT:
        raise BudgetExceeded(
            f"this {type(value).__name__} would hold more than {MAX_OUTPUT:,} characters"
        )
    return value


def _bounded_method(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """An allowed method of a built-in value, its result weighed (or estimated first)."""

    @wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        owner = getattr(method, "__self__", None)
        if name == "join" and isinstance(owner, str) and len(args) == 1:
            items = _take(args[0], "join()")
            _build(_joined_size(items, owner), "join()")
            args = (items,)
        elif name == "replace" and isinstance(owner, str) and len(args) >= 2:
            old, new = args[0], args[1]
            if isinstance(old, str) and isinstance(new, str):
                found = owner.count(old) if old else len(owner) + 1
                limit = args[2] if len(args) > 2 else kwargs.get("count", -1)
                if isinstance(limit, int) and limit >= 0:
                    found = min(found, limit)
                _build(len(owner) + found * max(len(new) - len(old), 0), "replace()")
        result = method(*args, **kwargs)
        if isinstance(result, str):
            if name in ("join", "replace"):
                # Accounted for above; Markup's escaping of the arguments may still grow it.
                if len(result) > MAX_OUTPUT:
                    raise BudgetExceeded(
                        f"{name}() would build more than {MAX_OUTPUT:,} characters"
                    )
            else:
                _build(len(result), f"{name}()")
        return result

    return call


def _guard_method(obj: Any, name: str, value: Any) -> Any:
    """`value` (read as `obj.name`) if it may be called from a template; else refuse."""
    if isinstance(obj, str) and name in ("format", "format_map"):
        raise SecurityError(f"the string method {name!r} is not allowed in templates")
    if not callable(value) or isinstance(value, Undefined):
        return value
    if isinstance(obj, _RUNTIME_TYPES) or not hasattr(value, "__self__"):
        # The loop's and blocks' own methods; macros, `range` and other template functions.
        return value
    for kinds, allowed in ALLOWED_METHODS:
        if isinstance(obj, kinds):
            if name not in allowed:
                break
            return _bounded_method(value, name)
    raise SecurityError(f"the {type(obj).__name__} method {name!r} is not allowed in templates")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose text arguments are weighed and whose text result is accounted for."""
    # A filter marked pass_context/pass_eval_context/pass_environment gets that first.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    if name == "join":

        @wraps(function)
        def join(*args: Any, **kwargs: Any) -> Any:
            items = _take(args[skip], "join")
            separator = args[skip + 1] if len(args) > skip + 1 else kwargs.get("d", "")
            _build(_joined_size(items, separator), "join")
            return function(*args[:skip], items, *args[skip + 1 :], **kwargs)

        return join
    if name == "round":

        @wraps(function)
        def rounded(*args: Any, **kwargs: Any) -> Any:
            precision = args[skip + 1] if len(args) > skip + 1 else kwargs.get("precision", 0)
            if isinstance(precision, int) and abs(precision) > MAX_PRECISION:
                raise BudgetExceeded(f"round() takes a precision of at most {MAX_PRECISION}")
            return function(*args, **kwargs)

        return rounded
    if name not in _TEXT_FILTERS:
        return function

    @wraps(function)
    def text(*args: Any, **kwargs: Any) -> Any:
        for argument in (*args[skip:], *kwargs.values()):
            _build(weight(argument), name)
        result = function(*args, **kwargs)
        if isinstance(result, str):
            _build(len(result), name)
        return result

    return text


# ---------------------------------------------------------------- environment


class _CodeGenerator(CodeGenerator):
    """Jinja2's code generator, with `~` weighing its parts before joining them."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """`a ~ b`: as Jinja2 writes it, with the parts passed through `concat_parts`."""
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"{join}(environment.concat_parts((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write(")))")


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with bounded values, steps, calls and time."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    # Read by the generated code: `environment.concat`, `.concat_parts`, `.count_loop`,
    # `.checked_literal`.
    concat = staticmethod(_concat_output)
    concat_parts = staticmethod(_concat_parts)
    count_loop = staticmethod(_count_loop)
    checked_literal = staticmethod(_checked_literal)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse arithmetic that would build a huge value, before it runs."""
        _tick()
        if operator == "+" and isinstance(left, (str, list, tuple)):
            _build(weight(left) + weight(right), "`+`")
        elif operator == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, (str, list, tuple)) and isinstance(times, int):
                    _build(weight(sized) * max(times, 0), "`*`")
            bits = (
                left.bit_length() + right.bit_length()
                if isinstance(left, int) and isinstance(right, int)
                else 0
            )
            if bits > MAX_NUMBER_BITS:
                raise BudgetExceeded(
                    f"`*` would build a number of more than {MAX_NUMBER_BITS:,} bits"
                )
        elif operator == "**" and (
            not isinstance(right, (int, float))
            or not isinstance(left, (int, float))
            or abs(right) > 64
            or abs(left) > 2**32
        ):
            raise BudgetExceeded("`**` takes a base of at most 2**32 and an exponent of at most 64")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in templates")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly (never render empty) on an attribute the sandbox refuses."""
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Count every call against the budget, and how deeply calls nest."""
        budget = _current()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        budget.depth += 1
        try:
            if budget.depth > MAX_CALL_DEPTH:
                raise BudgetExceeded(
                    f"macros or blocks call each other more than {MAX_CALL_DEPTH} levels deep"
                )
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.name`: counted; no `_private` names; a dict's key wins over its methods."""
        _tick()
        if attribute.startswith("_"):
            raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")
        if isinstance(obj, dict) and attribute in obj:
            # So that a field named like a dict method (`cart.items`) reads the field.
            return obj[attribute]
        return _guard_method(obj, attribute, super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        """`obj[key]`: counted; no `_private` names; methods checked as for `obj.name`."""
        _tick()
        if isinstance(argument, str) and argument.startswith("_"):
            raise SecurityError(f"access to attribute {argument!r} is not allowed in templates")
        value = super().getitem(obj, argument)
        return _guard_method(obj, argument, value) if isinstance(argument, str) else value


def _environment(html: bool) -> Sandbox:
    env = Sandbox(autoescape=html, undefined=ChainableUndefined, finalize=_finalize)
    env.filters = {
        name: _bounded_filter(name, function)
        for name, function in env.filters.items()
        if name in ALLOWED_FILTERS
    }
    env.globals = {"range": _BoundedRange}
    return env


ENVIRONMENTS: Final = {False: _environment(False), True: _environment(True)}
"""The sandbox for plain-text fields (False) and for HTML fields (True, autoescaped)."""


# ---------------------------------------------------------------- compiling


def _check_depth(ast: nodes.Template) -> None:
    """Refuse a parsed template nested deeper than MAX_NESTING (iteratively: no recursion)."""
    stack: list[tuple[nodes.Node, int]] = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TemplateNestingError(
                f"the template nests expressions or tags more than {MAX_NESTING} levels deep",
                node.lineno,
            )
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def parse_template(source: str, html: bool = False) -> nodes.Template:
    """The template's syntax tree; raises TemplateError if it is too long, invalid or deep."""
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"the template is longer than {MAX_SOURCE:,} characters")
    parser = Parser(ENVIRONMENTS[html], source)
    try:
        ast = parser.parse()
    except RecursionError:
        # Jinja2's parser recurses once per nested bracket, operator or tag.
        raise TemplateNestingError(
            f"the template nests expressions or tags more than {MAX_NESTING} levels deep",
            parser.stream.current.lineno,
        ) from None
    _check_depth(ast)
    return ast


class _Bounds(NodeTransformer):
    """Rewrites a parsed template so that loops and literals are bounded when they run."""

    def __init__(self, environment: Sandbox) -> None:
        self.environment = environment

    def _call(self, name: str, argument: nodes.Expr, lineno: int) -> nodes.Call:
        call = nodes.Call(
            nodes.EnvironmentAttribute(name, lineno=lineno), [argument], [], None, None
        )
        call.set_lineno(lineno)
        call.set_environment(self.environment)
        return call

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """Every iteration of a `{% for %}` loop counts; `recursive` loops are refused."""
        if node.recursive:
            raise TemplateError(
                f"recursive loops are not allowed in templates (line {node.lineno})"
            )
        self.generic_visit(node)
        node.iter = self._call("count_loop", cast(nodes.Expr, node.iter), node.lineno)
        return node

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return self._call("checked_literal", node, node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        """`[a, b]`: weighed when it is made."""
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        """`{'a': b}`: weighed when it is made."""
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        """`(a, b)`: weighed when it is made (not an assignment's target, `a, b = ...`)."""
        if node.ctx != "load":
            return node
        return self._literal(node)


def compile_template(source: str, html: bool = False) -> Template:
    """Compile an editor's template; raises TemplateError when it is not one or too large."""
    ast = _Bounds(ENVIRONMENTS[html]).visit(parse_template(source, html))
    try:
        return ENVIRONMENTS[html].from_string(ast)
    except TemplateError:
        raise
    except (RecursionError, SyntaxError, ValueError, OverflowError, MemoryError) as exc:
        # A backstop: the depth check keeps Python's own compiler within its limits.
        raise TemplateError(f"the template cannot be compiled: {exc}") from None


def render_compiled(template: Template, variables: Mapping[str, Any]) -> str:
    """Render within every bound; raises TemplateError (or another exception) on failure."""
    budget = _Budget()
    previous = _current()
    _local.budget = budget
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            budget.tick()
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise BudgetExceeded(f"the output is longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
        return "".join(parts)
    except RecursionError:
        raise BudgetExceeded("the template nests calls too deeply") from None
    finally:
        _local.budget = previous
