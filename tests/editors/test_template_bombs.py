"""Template bombs: every hostile template fails fast, in bounded memory, with a precise error.

Each bomb below built a huge value, froze the renderer or crashed the
compiler before the sandbox bounded every operation (issue 10, finding 6).
Now each one is refused before it builds anything large, its message says
which limit it broke, and the field shows its fallback.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import TemplateError

from blocks import sandbox, templating
from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.model import Block, Page, Variant
from blocks.sandbox import MAX_BUILT, MAX_NESTING, MAX_STEPS
from blocks.selection import select_page
from blocks.templating import (
    MAX_PAGE_OUTPUT,
    STATS,
    PageBudget,
    render,
    render_fields,
    render_page,
    template_problems,
)

#: Profile data heavier than any value a template may print: 100 interests of 100 characters.
HEAVY = {f"interest-{i:03d}-" + "x" * 87: 1.0 for i in range(100)}
VARIABLES: dict[str, Any] = {
    "visitor": {"traits": {"firstName": "Ada"}, "interests": HEAVY},
    "request": {"country": "DE"},
}
S = "{% set s = 'x' * 8000 %}"  # a string just under MAX_OUTPUT
BUILDS = "would build more than 8,192 characters"
HOLDS = "would hold more than 8,192 characters"
STEPS = f"more than {MAX_STEPS:,} times"
DEEP = f"more than {MAX_NESTING} levels deep"
#: Lists that double at each level, built from references: 2**22 comparisons for one `==`.
DOUBLING = "{% set l = [1] %}{% set m = [1] %}" + "{% set l, m = [l, m], [m, l] %}" * 22

#: name → (template, what the error says, or the texts one of which it says)
BOMBS: dict[str, tuple[str, str | tuple[str, ...]]] = {
    # Exponential doubling: 23 steps make a 64 MB string.
    "concat-doubling": ("{% set a = 'xxxxxxxx' %}" + "{% set a = a ~ a %}" * 23, f"`~` {BUILDS}"),
    "plus-doubling": ("{% set a = 'xxxxxxxx' %}" + "{% set a = a + a %}" * 23, f"`+` {BUILDS}"),
    "list-plus-doubling": ("{% set a = ['xxxx'] %}" + "{% set a = a + a %}" * 23, f"`+` {BUILDS}"),
    "repeat": ("{{ 'a' * 100000000 }}", f"`*` {BUILDS}"),
    "repeat-just-over": ("{{ 'a' * 8193 }}", f"`*` {BUILDS}"),
    "list-repeat": ("{{ ['a'] * 100000000 }}", f"`*` {BUILDS}"),
    "list-of-big-strings": (S + "{% set l = [s] * 2 %}{{ l | join | length }}", f"`*` {BUILDS}"),
    # Literals of references cost nothing to build, but nesting them doubles their text.
    "big-list-literal": (S + "{% set a = [s, s] %}", f"this list {HOLDS}"),
    "big-tuple-literal": (S + "{% set a = (s, s) %}", f"this tuple {HOLDS}"),
    "big-dict-literal": (S + "{% set a = {'a': s, 'b': s} %}", f"this dict {HOLDS}"),
    "doubling-literals": (DOUBLING + "{{ l == m }}", HOLDS),
    # Values from the profile heavier than a template may print or build.
    "heavy-print": ("{{ visitor.interests }}", f"printing this value {BUILDS}"),
    "heavy-join": ("{{ visitor.interests | join }}", f"join {BUILDS}"),
    "heavy-items-join": ("{{ visitor.interests.items() | join }}", f"join {BUILDS}"),
    "heavy-concat": ("{{ visitor.interests ~ '' }}", f"`~` {BUILDS}"),
    "heavy-string": ("{{ visitor.interests | string }}", f"string {BUILDS}"),
    "heavy-truncate": ("{{ visitor.interests | truncate(10) }}", f"truncate {BUILDS}"),
    "heavy-upper": ("{{ visitor.interests | upper }}", f"upper {BUILDS}"),
    "heavy-list": ("{{ [visitor.interests] }}", f"this list {HOLDS}"),
    "join-range": ("{{ range(10000) | join(', ') }}", "join would join more than 8,192 items"),
    "join-separator": (S + "{{ range(2) | join(s ~ s) }}", BUILDS),
    "join-big-separator": (S + "{{ [1, 2, 3] | join(s) }}", f"join {BUILDS}"),
    "str-join-method": (S + "{{ s.join(s) }}", f"join() {BUILDS}"),
    "replace-method": (S + "{{ s.replace('x', 'yy') }}", f"replace() {BUILDS}"),
    "replace-empty": (S + "{{ s.replace('', 'y') }}", f"replace() {BUILDS}"),
    "format-method": ("{{ '{:>100000000}'.format(1) }}", "'format' is not allowed"),
    "format-map": ("{{ '{x:>100000000}'.format_map({'x': 1}) }}", "'format_map' is not allowed"),
    "percent-format": ("{{ '%0100000000d' % 1 }}", "% is not allowed"),
    "center-method": ("{{ 'x'.center(1000000000) }}", "'center' is not allowed"),
    "ljust-method": ("{{ 'x'.ljust(1000000000) }}", "'ljust' is not allowed"),
    "zfill-method": ("{{ 'x'.zfill(1000000000) }}", "'zfill' is not allowed"),
    "expandtabs-method": ("{{ '\t'.expandtabs(1000000000) }}", "'expandtabs' is not allowed"),
    "translate-method": (S + "{{ s.translate({120: s}) }}", "'translate' is not allowed"),
    "method-by-key": ("{{ 'x'['center'](1000000000) }}", "'center' is not allowed"),
    "to-bytes": ("{{ (1).to_bytes(1000000000, 'big') }}", "'to_bytes' is not allowed"),
    "fromkeys": ("{{ visitor.interests.fromkeys(range(10000), 1) }}", "'fromkeys' is not allowed"),
    # Filters editors may not use at all: unknown to the sandbox.
    "center-filter": ("{{ 'x' | center(1000000000) }}", "No filter named 'center'"),
    "format-filter": ("{{ '%s' | format('x') }}", "No filter named 'format'"),
    "replace-filter": ("{{ 'x' | replace('x', 'yy') }}", "No filter named 'replace'"),
    "indent-filter": ("{{ 'x\nx' | indent(1000000000) }}", "No filter named 'indent'"),
    "wordwrap-filter": ("{{ 'x' | wordwrap(1) }}", "No filter named 'wordwrap'"),
    "batch-filter": ("{{ range(9000) | batch(1) }}", "No filter named 'batch'"),
    "slice-filter": ("{{ range(9000) | slice(9000) }}", "No filter named 'slice'"),
    "sum-filter": ("{{ [[1]] * 8000 | sum(start=[]) }}", "No filter named 'sum'"),
    "round-floor": ("{{ 1.5 | round(1000000000, 'floor') }}", "precision of at most"),
    "round-int": ("{{ 5 | round(-1000000000) }}", "precision of at most"),
    # Globals other than range() do not exist.
    "lipsum": ("{{ lipsum(100000, false, 100000, 100000) }}", "'lipsum' is undefined"),
    "cycler": ("{{ cycler(*range(9000)).next() }}", "'cycler' is undefined"),
    # Loops: every iteration counts, with or without output.
    "huge-range": ("{% for i in range(100000000) %}x{% endfor %}", "range() is limited"),
    "range-overflow": ("{{ range(10**18 * 10**18) | length }}", "range() is limited"),
    "nested-ranges": (
        "{% set r = range(9000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
        STEPS,
    ),
    "nested-string-loops": (S + "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}", STEPS),
    "deep-loop-nest": (S + "{% for a in s %}" * 5 + "{% endfor %}" * 5, STEPS),
    "loop-cycle-output": (
        S + "{% for i in range(9000) %}{{ loop.cycle(s) }}{% endfor %}",
        "characters",
    ),
    "recursive-loop": (
        "{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}",
        "recursive loops are not allowed",
    ),
    # Captured output: macros, {% set %} and {% filter %} blocks.
    "set-block": (
        S + "{% set c %}{% for i in range(100) %}{{ s }}{% endfor %}{% endset %}",
        f"builds more than {MAX_BUILT:,} characters in all",
    ),
    "filter-block": (
        "{% filter upper %}{% for i in range(9000) %}xxxxxxxxxx{% endfor %}{% endfilter %}",
        f"capture {BUILDS}",
    ),
    "macro-literal-buffer": (
        "{% macro m() %}{% for i in range(9000) %}" + "x" * 400 + "{% endfor %}{% endmacro %}"
        "{{ m() | length }}",
        f"capture {BUILDS}",
    ),
    "macro-recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "levels deep"),
    "macro-fan-out": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% else %}"
        + "x" * 1000
        + "{% endif %}{% endmacro %}{{ f(12) }}",
        (BUILDS, f"builds more than {MAX_BUILT:,} characters in all"),
    ),
    "macro-call-storm": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(15) }}",
        STEPS,
    ),
    "block-recursion": ("{% block b %}{{ self.b() }}{% endblock %}", "levels deep"),
    # Numbers.
    "power-tower": ("{{ 10 ** 10 ** 10 }}", "exponent of at most 64"),
    "huge-power": ("{{ 10 ** 100000000 }}", "exponent of at most 64"),
    "squaring": ("{% set a = 2 ** 32 %}" + "{% set a = a * a %}" * 24, "4,096 bits"),
    "big-int-from-text": ("{{ ('1' * 4000) | int * ('1' * 4000) | int }}", "4,096 bits"),
    "big-int-power": ("{{ ('1' * 4000) | int ** 2 }}", "base of at most"),
    # Output.
    "huge-output": ("{% for i in range(9000) %}xxxxxxxxxx{% endfor %}", "output is longer"),
}
#: Templates nested so deeply that compiling them exhausted the interpreter's stack.
DEEP_TEMPLATES: dict[str, str] = {
    "unary-minus": "{{ " + "-" * 3000 + "1 }}",
    "unary-plus": "{{ " + "+" * 3000 + "1 }}",
    "not": "{{ " + "not " * 1000 + "1 }}",
    "parentheses": "{{ " + "(" * 1000 + "1" + ")" * 1000 + " }}",
    "lists": "{{ " + "[" * 1000 + "]" * 1000 + " }}",
    "dicts": "{{ " + "{'a': " * 500 + "1" + "}" * 500 + " }}",
    "sum-chain": "{{ " + "1 + " * 1000 + "1 }}",
    "filter-chain": "{{ 'x'" + " | upper" * 500 + " }}",
    "attribute-chain": "{{ visitor" + ".a" * 1500 + " }}",
    "subscript-chain": "{{ visitor" + "[0]" * 1000 + " }}",
    "conditional-chain": "{{ " + "1 if x else " * 300 + "1 }}",
    "nested-ifs": "{% if 1 %}" * 190 + "{% endif %}" * 190,
    "nested-fors": "{% for a in b %}" * 120 + "{% endfor %}" * 120,
    "call-args": "{{ " + "f(" * 1000 + ")" * 1000 + " }}",
}


def _attempt(source: str) -> tuple[str, float, int]:
    """The error of rendering `source`, with the seconds and the peak bytes it took."""

    def error() -> str:
        try:
            render(source, VARIABLES)
        except TemplateError as exc:
            return str(exc)
        return "(rendered)"

    started = time.perf_counter()
    message = error()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        error()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return message, elapsed, peak


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """No time limit: the limit that must stop each bomb is the deterministic one it names."""
    monkeypatch.setattr("blocks.sandbox.TIME_BUDGET", 60.0)


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize(("source", "error"), BOMBS.values(), ids=list(BOMBS))
def test_a_template_bomb_fails_fast_in_bounded_memory_with_a_precise_error(
    source: str, error: str | tuple[str, ...]
) -> None:
    message, elapsed, peak = _attempt(source)
    assert message != "(rendered)"
    expected = (error,) if isinstance(error, str) else error
    assert any(text in message for text in expected), message
    # Generous: the limits stop each bomb after a few milliseconds and kilobytes.
    assert elapsed < 1.0
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize("source", [source for source, _ in BOMBS.values()], ids=list(BOMBS))
def test_a_template_bomb_shows_the_fallback(source: str) -> None:
    before = STATS.failures
    result = render_fields("hero", {"heading": source}, {"heading": "Hello"}, VARIABLES)
    assert result.fields == {"heading": "Hello"}
    assert result.failures == ("heading",)
    assert STATS.failures == before + 1


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize("source", DEEP_TEMPLATES.values(), ids=list(DEEP_TEMPLATES))
def test_deep_nesting_is_a_template_error_not_a_crash(source: str) -> None:
    assert len(source) <= 4096
    message, elapsed, _ = _attempt(source)
    assert DEEP in message
    assert elapsed < 1.0
    result = render_fields("hero", {"heading": source}, {"heading": "Hello"}, VARIABLES)
    assert (result.fields, result.individual) == ({"heading": "Hello"}, False)
    [problem] = template_problems(source)
    assert problem.code == "template.syntax"
    assert DEEP in problem.message
    assert "(line 1)" in problem.message


# ---------------------------------------------------------------- a page of many templates


def _page_of(blocks: int, heading: str) -> tuple[Page, TargetingContext]:
    page = Page(
        slug="many",
        title="Many",
        blocks=tuple(
            Block(f"b{i}", "hero", (Variant("v", {"heading": heading}, fallback={"heading": "-"}),))
            for i in range(blocks)
        ),
    )
    context = build_context(
        request=RequestFacts(visitor_id="v"),
        profile=None,
        audiences=AudienceSet(),
        now=datetime(2026, 1, 1, tzinfo=UTC),
        locale="en-US",
    )
    return page, context


def test_the_templates_of_one_page_are_bounded_together() -> None:
    # Each field is within its own limit; twenty of them are not.
    page, context = _page_of(20, "{{ 'x' * 8000 }}")
    _, rendered = render_page(page, select_page(page, context), context, "en-US")
    headings = [r.fields["heading"] for r in rendered]
    fits = MAX_PAGE_OUTPUT // 8000
    assert headings == ["x" * 8000] * fits + ["-"] * (20 - fits)
    assert [r.failures for r in rendered[fits:]] == [("heading",)] * (20 - fits)


def test_the_page_time_budget_shows_the_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("blocks.templating.PAGE_TIME_BUDGET", -1.0)
    page, context = _page_of(3, "Hi {{ visitor.id }}")
    _, rendered = render_page(page, select_page(page, context), context, "en-US")
    assert [r.fields["heading"] for r in rendered] == ["-"] * 3
    with pytest.raises(TemplateError, match="the page's templates took longer than"):
        PageBudget().check()


def test_lint_names_a_method_templates_may_not_use() -> None:
    [problem] = template_problems("{{ visitor.traits.firstName.ljust(10) }}")
    assert problem.code == "template.limit"
    assert "the template calls the method 'ljust' (line 1)" in problem.message
    [problem] = template_problems("{{ 'x' ~ 'y' * 9000 }}")
    assert problem.code == "template.limit"
    assert "`*` would build more than 8,192 characters" in problem.message
    assert template_problems("{{ visitor.traits.firstName.upper() }}") == []


def test_a_starved_machine_does_not_spend_the_page_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    page, context = _page_of(3, "Hi {{ visitor.id }}")
    waited = [0.0]

    def monotonic() -> float:
        waited[0] += 0.1  # each reading 100 ms later than the last: no core for the loop
        return time.monotonic() + waited[0]

    monkeypatch.setattr(
        templating, "time", SimpleNamespace(monotonic=monotonic, thread_time=time.thread_time)
    )
    _, rendered = render_page(page, select_page(page, context), context, "en-US")
    # 300 ms of wall-clock time, far more than the 200 ms budget: none fell back.
    assert waited[0] > templating.PAGE_TIME_BUDGET
    assert all(r.fields["heading"].startswith("Hi ") for r in rendered)
    bounded = PageBudget()
    bounded.wall_seconds = sandbox.MAX_WALL_BUDGETS * templating.PAGE_TIME_BUDGET + 0.001
    with pytest.raises(TemplateError, match="the page's templates took longer than"):
        bounded.check()
