"""Templated fields: rendering, autoescaping, bounds and sandbox escapes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import TemplateError

from blocks import sandbox
from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, build_context
from blocks.model import Block, Page, Variant
from blocks.selection import select_page
from blocks.templating import (
    MAX_OUTPUT,
    STATS,
    render,
    render_fields,
    render_page,
    template_problems,
    template_variables,
)

VARIABLES: dict[str, Any] = {
    "visitor": {"traits": {"firstName": "Ada", "pageViews": 4}, "audiences": ["returning"]},
    "request": {"country": "DE", "locale": "de-DE"},
}


def test_greets_the_visitor_with_a_default_for_strangers() -> None:
    source = 'Welcome back, {{ visitor.traits.firstName | default("friend") }}'
    assert render(source, VARIABLES) == "Welcome back, Ada"
    assert render(source, {"visitor": {"traits": {}}}) == "Welcome back, friend"


def test_html_fields_are_autoescaped_and_text_fields_are_not() -> None:
    evil = {"visitor": {"traits": {"firstName": "<script>x</script>"}}}
    html = render_fields("rich_text", {"html": "<p>{{ visitor.traits.firstName }}</p>"}, {}, evil)
    assert html.fields["html"] == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    text = render_fields("hero", {"heading": "{{ visitor.traits.firstName }}"}, {}, evil)
    assert text.fields["heading"] == "<script>x</script>"  # plain text: frontends escape it


def test_only_allowlisted_filters_exist() -> None:
    assert render("{{ 'ada' | upper }}", {}) == "ADA"
    for filt in ("format", "attr", "map", "xmlattr", "center", "replace", "tojson"):
        with pytest.raises(TemplateError, match=f"No filter named '{filt}'"):
            render("{{ 'x' | " + filt + " }}", {})


ESCAPES = {
    "class-mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ render.__globals__ }}",
    "cycler-init": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner": "{{ joiner.__init__.__globals__ }}",
    "namespace": "{{ namespace.__init__ }}",
    "lipsum": "{{ lipsum.__globals__ }}",
    "self": "{{ self.__init__.__globals__ }}",
    "visitor-class": "{{ visitor.__class__.__base__.__subclasses__() }}",
    "format-attr": "{{ '{0.__class__.__mro__}'.format(visitor) }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': visitor}) }}",
    "percent-format": "{{ '%s' % visitor }}",
    "huge-repeat": "{{ 'a' * 100000000 }}",
    "huge-power": "{{ 10 ** 100000000 }}",
    "huge-range": "{% for i in range(100000000) %}x{% endfor %}",
    "nested-loops": "{% set r = range(9000) %}"
    "{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
    "huge-output": "{% for i in range(9000) %}xxxxxxxxxx{% endfor %}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "dict-mutation": "{{ visitor.traits.update({'firstName': 'Eve'}) }}",
    "getitem-dunder": "{{ visitor['__class__'] }}",
}


@pytest.mark.parametrize("source", ESCAPES.values(), ids=list(ESCAPES))
def test_sandbox_escapes_fail_safely_with_the_fallback(source: str) -> None:
    before = STATS.failures
    started = time.monotonic()
    result = render_fields("hero", {"heading": source}, {"heading": "Hello"}, VARIABLES)
    assert time.monotonic() - started < 1.0
    assert result.fields == {"heading": "Hello"}
    assert result.failures == ("heading",)
    assert STATS.failures == before + 1
    assert VARIABLES["visitor"]["traits"]["firstName"] == "Ada"


def test_output_is_bounded() -> None:
    with pytest.raises(TemplateError, match="longer than"):
        render("{% for i in range(5000) %}xxxx{% endfor %}", {})
    assert len(render("{% for i in range(100) %}x{% endfor %}", {})) == 100 < MAX_OUTPUT


def test_without_a_fallback_the_literal_text_is_shown() -> None:
    result = render_fields("hero", {"cta": {"label": "Hi {{ ''.__class__ }}!"}}, {}, VARIABLES)
    assert result.fields == {"cta": {"label": "Hi !"}}
    assert result.failures == ("cta.label",)


def test_only_templates_reading_the_visitor_are_individual() -> None:
    plain = render_fields("hero", {"heading": "Hello"}, {}, VARIABLES)
    static = render_fields("hero", {"heading": "{{ 'hi' | upper }}"}, {}, VARIABLES)
    personal = render_fields("hero", {"heading": "{{ visitor.traits.pageViews }}"}, {}, VARIABLES)
    assert (plain.templated, plain.individual) == (False, False)
    assert (static.templated, static.individual) == (True, False)
    assert (personal.templated, personal.individual) == (True, True)
    assert personal.fields["heading"] == "4"


def test_render_page_marks_templated_blocks_individual() -> None:
    page = Page(
        slug="p",
        title="P",
        blocks=(
            Block("a", "hero", (Variant("v", {"heading": "Hi {{ visitor.traits.firstName }}"}),)),
            Block("b", "hero", (Variant("v", {"heading": "Hi"}),)),
        ),
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    context = build_context(
        request=RequestFacts(visitor_id="v1"),
        profile={"traits": {"firstName": "Ada"}},
        audiences=AudienceSet(),
        now=now,
        locale="en-US",
    )
    decision, rendered = render_page(page, select_page(page, context), context, "en-US")
    assert [d.scope for d in decision.decisions] == ["individual", "public"]
    assert decision.scope == "individual"
    assert rendered[0].fields["heading"] == "Hi Ada"
    assert template_variables(context)["visitor"]["traits"]["firstName"] == "Ada"


def test_template_problems_in_loops_ignore_local_names() -> None:
    assert template_problems("{% for x in visitor.audiences %}{{ x | upper }}{% endfor %}") == []
    [problem] = template_problems("{{ visitor.cart.total }}")
    assert problem.code == "template.unknown-field"
    assert "idleMinutes, items, value" in problem.suggestion
    [problem] = template_problems("{{ visitor.interests.anything }}{% if %}")
    assert problem.code == "template.syntax"


def _starved(monkeypatch: pytest.MonkeyPatch, wait: float) -> list[float]:
    """Make every wall-clock reading of the sandbox `wait` s later than the last: no core."""
    waited = [0.0]

    def monotonic() -> float:
        waited[0] += wait
        return time.monotonic() + waited[0]

    clocks = SimpleNamespace(monotonic=monotonic, thread_time=time.thread_time)
    monkeypatch.setattr(sandbox, "time", clocks)
    return waited


def test_waiting_for_a_core_does_not_count_against_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waited = _starved(monkeypatch, 0.004)
    assert render("{% for i in range(10) %}{{ i }}{% endfor %}", {}) == "0123456789"
    assert waited[0] > sandbox.TIME_BUDGET  # the wall clock did pass the budget


def test_the_wall_clock_still_bounds_a_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    _starved(monkeypatch, sandbox.TIME_BUDGET * sandbox.MAX_WALL_BUDGETS / 4)
    with pytest.raises(TemplateError, match="the template took too long"):
        render("{% for i in range(10) %}{{ i }}{% endfor %}", {})


def test_time_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("blocks.sandbox.TIME_BUDGET", 0.0)
    with pytest.raises(TemplateError, match="the template took too long"):
        render("{% for i in range(3) %}{{ i }}{% endfor %}", {})
