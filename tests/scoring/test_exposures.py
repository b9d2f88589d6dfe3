"""Flattening a page exposure document into per-block records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scoring.exposures import block_exposures

TS = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def _page() -> dict[str, Any]:
    return {
        "_id": "abc",
        "visitorId": "v1",
        "page": "home",
        "locale": "en-US",
        "ts": TS,
        "personalized": True,
        "modelVersion": "variant-1",
        "features": {"device": "mobile"},
        "blocks": [
            {
                "blockId": "hero",
                "variantId": "a",
                "reason": "score",
                "ruleId": "hero/a",
                "score": 0.3,
                "propensity": 0.95,
                "modelVersion": "variant-1",
                "candidates": [{"variantId": "a", "tags": ["x"], "score": 0.3}],
                "outcome": {"click": True, "clickAt": TS, "conversion": False},
            },
            {
                "blockId": "footer",
                "variantId": "default",
                "reason": "default",
                "ruleId": None,
                "score": None,
                "propensity": 1.0,
                "modelVersion": None,
                "candidates": [{"variantId": "default", "tags": [], "score": None}],
            },
        ],
    }


def test_each_block_becomes_one_record_in_the_old_flat_shape() -> None:
    hero, footer = block_exposures(_page())
    assert (hero["_id"], hero["exposureId"], hero["index"]) == ("abc:0", "abc", 0)
    assert (footer["_id"], footer["exposureId"], footer["index"]) == ("abc:1", "abc", 1)
    for record in (hero, footer):
        assert (record["visitorId"], record["page"], record["locale"]) == ("v1", "home", "en-US")
        assert (record["ts"], record["personalized"]) == (TS, True)
        assert record["features"] == {"device": "mobile"}
    assert (hero["blockId"], hero["variantId"], hero["propensity"]) == ("hero", "a", 0.95)
    assert hero["candidates"] == [{"variantId": "a", "tags": ["x"], "score": 0.3}]
    assert hero["outcome"]["click"] is True
    assert "outcome" not in footer
    # The block's own model version, not the page's: this block was not scored.
    assert footer["modelVersion"] is None
    assert "blocks" not in hero


def test_a_document_without_blocks_flattens_to_nothing() -> None:
    assert block_exposures({"_id": "x", "visitorId": "v1", "blocks": []}) == []
    assert block_exposures({"_id": "y", "visitorId": "v1"}) == []
