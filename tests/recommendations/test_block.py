"""The recommendations block: its fields as editors write them, and what each strategy reads."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.parse import parse_page
from blocks.recommendations import has_history, recommendation_spec


def _page(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": "p",
        "title": "P",
        "blocks": [
            {
                "id": "recs",
                "type": "recommendations",
                "variants": [
                    {"id": "good", "fields": {"title": "For you", "strategy": "personalized"}},
                    {"id": "bad", "fields": fields},
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"title": "x", "strategy": "magic"}, "fields.strategy"),
        ({"title": "x", "strategy": "trending", "limit": 0}, "fields.limit"),
        ({"title": "x", "strategy": "trending", "limit": 25}, "fields.limit"),
        ({"strategy": "trending"}, "fields.title"),
        ({"title": "x", "strategy": "similar", "products": []}, "fields.products"),
    ],
)
def test_bad_fields_leave_the_variant_out_and_name_the_field(
    fields: dict[str, Any], path: str
) -> None:
    parsed = parse_page(_page(fields), source="test")
    [block] = parsed.page.blocks
    assert [variant.id for variant in block.variants] == ["good"]
    [problem] = parsed.problems
    assert problem.path == f"blocks[0].variants[1].{path}"


@pytest.mark.parametrize(
    ("fields", "page_product", "anchor", "exclude", "cold", "warm"),
    [
        ({"strategy": "trending"}, None, None, False, "public", "public"),
        (
            {"strategy": "trending", "excludeOwned": True},
            None,
            None,
            True,
            "audience",
            "individual",
        ),
        ({"strategy": "similar"}, "TENT-2P", "TENT-2P", False, "public", "public"),
        (
            {"strategy": "similar", "productId": "ROPE"},
            "TENT-2P",
            "ROPE",
            False,
            "public",
            "public",
        ),
        ({"strategy": "similar"}, None, None, False, "public", "public"),
        (
            {"strategy": "frequently-bought-together"},
            "TENT-2P",
            "TENT-2P",
            False,
            "public",
            "public",
        ),
        ({"strategy": "frequently-bought-together"}, None, None, True, "audience", "individual"),
        ({"strategy": "personalized"}, "TENT-2P", None, True, "audience", "individual"),
        (
            {"strategy": "personalized", "excludeOwned": False},
            None,
            None,
            False,
            "audience",
            "individual",
        ),
        ({"strategy": "recently-viewed"}, None, None, True, "audience", "individual"),
    ],
)
def test_what_each_strategy_reads(
    fields: dict[str, Any],
    page_product: str | None,
    anchor: str | None,
    exclude: bool,
    cold: str,
    warm: str,
) -> None:
    spec = recommendation_spec("recs", {"title": "t", **fields}, page_product)
    assert spec.anchor == anchor
    assert spec.exclude_owned is exclude
    assert spec.scope(history=False) == cold
    assert spec.scope(history=True) == warm
    assert spec.limit == 8


def test_product_history_is_viewed_carted_or_bought() -> None:
    assert not has_history({})
    assert not has_history({"cart": {"items": 0}, "recentlyViewed": [], "interests": {"x": 3}})
    assert has_history({"recentlyViewed": [{"productId": "A"}]})
    assert has_history({"cart": {"lines": [{"productId": "A"}]}})
    assert has_history({"purchased": ["A"]})
