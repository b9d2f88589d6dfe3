"""`renderedHtml`: valid, accessible HTML from per-type templates, checked with html5lib."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import html5lib
import httpx
import pytest

from blocks.html_sanitize import sanitize_html
from blocks.rendering import BlockRenderer
from tests.editors.keys import PREVIEW
from tests.graphql_helpers import graphql

QUERY = """
query($slug: String!, $preview: PreviewInput) {
  page(slug: $slug, preview: $preview) { blocks { id blockId type variantId renderedHtml } }
}
"""
AUDIENCES = [
    [],
    ["new_visitor"],
    ["returning"],
    ["high_value", "outdoor_fan"],
    ["cart_abandoner"],
    ["mobile"],
    ["dach"],
]


def parse(html: str) -> Element:
    """Parse a fragment; html5lib's strict mode raises on any parse error."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    fragment: Element = parser.parseFragment(html)
    return fragment


def text(element: Element) -> str:
    return "".join(element.itertext()).strip()


def check_accessible(html: str) -> None:
    root = parse(html)
    elements = list(root.iter())
    ids = [e.get("id") for e in elements if e.get("id")]
    assert len(ids) == len(set(ids)), ids
    [block] = list(root)
    label = block.get("aria-label")
    labelledby = block.get("aria-labelledby")
    if block.tag == "section":
        assert label or labelledby, html
    if labelledby:
        assert labelledby in ids
        assert text(next(e for e in elements if e.get("id") == labelledby))
    for element in elements:
        if element.tag == "img":
            assert element.get("alt") is not None, html
        if element.tag == "a":
            assert element.get("href"), html
            assert text(element), html
        if element.tag in ("h2", "h3"):
            assert text(element), html
        assert element.tag not in ("script", "style", "h1")


async def _pages(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    blocks = []
    for slug in ("home", "about", "outdoor", "sale"):
        for audiences in AUDIENCES:
            response = await graphql(
                client,
                QUERY,
                {"slug": slug, "preview": {"audiences": audiences, "drafts": False}},
                headers=PREVIEW,
            )
            body = response.json()
            assert "errors" not in body, body
            blocks.extend(body["data"]["page"]["blocks"])
    return blocks


async def test_every_demo_block_renders_valid_accessible_html(client: httpx.AsyncClient) -> None:
    blocks = await _pages(client)
    seen = {(b["type"], b["variantId"]) for b in blocks}
    assert {t for t, _ in seen} == {
        "banner",
        "hero",
        "product_grid",
        "rich_text",
        "testimonial",
        "call_to_action",
        "store_locator",
        "recommendations",
    }
    for block in blocks:
        check_accessible(block["renderedHtml"])


async def test_rendered_html_escapes_templated_values(client: httpx.AsyncClient) -> None:
    preview = {
        "audiences": ["returning"],
        "attributes": {"traits.pageViews": "<script>alert(1)</script>"},
    }
    body = (
        await graphql(client, QUERY, {"slug": "home", "preview": preview}, headers=PREVIEW)
    ).json()
    hero = next(b for b in body["data"]["page"]["blocks"] if b["blockId"] == "home-hero")
    assert hero["variantId"] == "welcome-back"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hero["renderedHtml"]
    check_accessible(hero["renderedHtml"])


def test_unsafe_urls_and_markup_never_reach_the_html() -> None:
    renderer = BlockRenderer()
    html = renderer.render(
        "hero",
        'x" onload="y',
        "v",
        {
            "heading": "<b>Hi</b>",
            "image": {"url": "javascript:alert(1)", "alt": 'a" onerror="x'},
            "cta": {"label": "Go", "url": " JavaScript:alert(1)"},
        },
    )
    check_accessible(html)
    root = parse(html)
    section = next(iter(root))
    assert section.get("id") == "block-x-onload-y"
    img = next(e for e in root.iter() if e.tag == "img")
    assert img.get("src") == "#"
    assert img.get("alt") == 'a" onerror="x'
    link = next(e for e in root.iter() if e.tag == "a")
    assert link.get("href") == "#"
    assert "&lt;b&gt;Hi&lt;/b&gt;" in html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<h1>About</h1><p>Hi", "<h2>About</h2><p>Hi</p>"),
        ("<p>a<script>alert(1)</script>b</p>", "<p>ab</p>"),
        ('<a href="javascript:alert(1)" onclick="x">l</a>', "<a>l</a>"),
        ('<a href="/ok" title="t">ok</a>', '<a href="/ok" title="t">ok</a>'),
        ("<ul><li>a<li>b</ul>", "<ul><li>a</li><li>b</li></ul>"),
        ("<p>a<p>b", "<p>a</p><p>b</p>"),
        ("<b>x<p>y</p></b>", "<b>x</b><p>y</p>"),
        ("<img src=x onerror=alert(1)>&lt;3", "&lt;3"),
        ("<li>stray</li>", "stray"),
    ],
)
def test_rich_text_is_sanitized_to_well_formed_html(source: str, expected: str) -> None:
    assert sanitize_html(source) == expected
    parse(sanitize_html(source))


def test_an_override_directory_replaces_shipped_templates(tmp_path: Path) -> None:
    (tmp_path / "hero.html.j2").write_text(
        '<section aria-label="Hero" id="{{ dom_id }}"><h2>{{ fields.heading }}!</h2></section>',
        encoding="utf-8",
    )
    (tmp_path / "banner.html.j2").write_text("{{ fields.text | nofilter }}", encoding="utf-8")
    renderer = BlockRenderer(tmp_path)
    hero = renderer.render("hero", "h", "v", {"heading": "Hey"})
    assert hero == '<section aria-label="Hero" id="block-h"><h2>Hey!</h2></section>'
    # A broken override falls back to the generic template instead of failing the page.
    banner = renderer.render("banner", "b", "v", {"text": "Sale"})
    assert 'class="tsr-block tsr-generic"' in banner
    check_accessible(banner)
