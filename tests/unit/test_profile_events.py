"""Tracked events: validation with the field at fault, and the update document per type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from profiles.events import EventError, EventType, TrackedEvent, profile_update

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(event_type: EventType = EventType.PAGE_VIEW, **fields: Any) -> TrackedEvent:
    return TrackedEvent(type=event_type, visitor_id="v1", timestamp=AT, **fields)


@pytest.mark.parametrize(
    ("event_type", "fields", "field"),
    [
        pytest.param(EventType.PAGE_VIEW, {"quantity": 0}, "quantity", id="quantity-zero"),
        pytest.param(EventType.PAGE_VIEW, {"quantity": -3}, "quantity", id="quantity-negative"),
        pytest.param(EventType.PAGE_VIEW, {"quantity": 10_001}, "quantity", id="quantity-too-big"),
        pytest.param(EventType.CLICK, {"price": -0.01}, "price", id="price-negative"),
        pytest.param(EventType.CLICK, {"price": 1e9 + 1}, "price", id="price-too-big"),
        pytest.param(EventType.CLICK, {"price": float("nan")}, "price", id="price-nan"),
        pytest.param(EventType.CLICK, {"price": float("inf")}, "price", id="price-inf"),
        pytest.param(EventType.PURCHASE, {"revenue": -1.0}, "revenue", id="revenue-negative"),
        pytest.param(EventType.PURCHASE, {"revenue": float("nan")}, "revenue", id="revenue-nan"),
        pytest.param(EventType.PAGE_VIEW, {"category": "a.b"}, "category", id="category-dot"),
        pytest.param(EventType.PAGE_VIEW, {"category": "$set"}, "category", id="category-dollar"),
        pytest.param(EventType.PAGE_VIEW, {"category": ""}, "category", id="category-empty"),
        pytest.param(EventType.PAGE_VIEW, {"category": "x" * 65}, "category", id="category-long"),
        pytest.param(
            EventType.PAGE_VIEW, {"category": "out door"}, "category", id="category-space"
        ),
        pytest.param(EventType.PAGE_VIEW, {"category": "wëird"}, "category", id="category-unicode"),
        pytest.param(EventType.ADD_TO_CART, {}, "price", id="add-to-cart-needs-price"),
    ],
)
def test_invalid_event_names_the_field(
    event_type: EventType, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventError) as info:
        event(event_type, **fields)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"quantity": 1}, id="quantity-min"),
        pytest.param({"quantity": 10_000}, id="quantity-max"),
        pytest.param({"price": 0.0}, id="price-zero"),
        pytest.param({"price": 1e9}, id="price-max"),
        pytest.param({"revenue": 0.0}, id="revenue-zero"),
        pytest.param({"category": "x" * 64}, id="category-64"),
        pytest.param({"category": "Outdoor_gear-2"}, id="category-charset"),
    ],
)
def test_valid_event_boundaries(fields: dict[str, Any]) -> None:
    assert event(EventType.CLICK, **fields).visitor_id == "v1"


SET_ON_INSERT = {"traits.firstSeen": AT, "createdAt": AT}
SEEN = {"traits.lastSeen": AT, "updatedAt": AT}


@pytest.mark.parametrize(
    ("tracked", "update"),
    [
        pytest.param(
            event(EventType.PAGE_VIEW),
            {
                "$inc": {"counts.page_view": 1, "traits.pageViews": 1},
                "$set": SEEN,
                "$setOnInsert": SET_ON_INSERT,
            },
            id="page-view",
        ),
        pytest.param(
            event(EventType.PAGE_VIEW, category="outdoor"),
            {
                "$inc": {"counts.page_view": 1, "traits.pageViews": 1, "interests.outdoor": 1},
                "$set": SEEN,
                "$setOnInsert": SET_ON_INSERT,
            },
            id="page-view-with-category",
        ),
        pytest.param(
            event(EventType.CLICK, block_id="home-hero", variant_id="vip"),
            {
                "$inc": {"counts.click": 1, "traits.clicks": 1},
                "$set": SEEN,
                "$setOnInsert": SET_ON_INSERT,
            },
            id="click",
        ),
        pytest.param(
            event(EventType.ADD_TO_CART, product_id="TENT", price=19.99, quantity=3),
            {
                "$inc": {"counts.add_to_cart": 1, "cart.items": 3, "cart.value": 59.97},
                "$set": {**SEEN, "cart.updatedAt": AT},
                "$setOnInsert": SET_ON_INSERT,
            },
            id="add-to-cart",
        ),
        pytest.param(
            event(EventType.ADD_TO_CART, price=0.0, category="gifts"),
            {
                "$inc": {
                    "counts.add_to_cart": 1,
                    "cart.items": 1,
                    "cart.value": 0.0,
                    "interests.gifts": 1,
                },
                "$set": {**SEEN, "cart.updatedAt": AT},
                "$setOnInsert": SET_ON_INSERT,
            },
            id="add-to-cart-free-item",
        ),
        pytest.param(
            event(EventType.PURCHASE, revenue=249.5),
            {
                "$inc": {"counts.purchase": 1, "traits.orders": 1, "traits.ltv": 249.5},
                "$set": {**SEEN, "cart.items": 0, "cart.value": 0, "cart.updatedAt": AT},
                "$setOnInsert": SET_ON_INSERT,
            },
            id="purchase",
        ),
        pytest.param(
            event(EventType.PURCHASE),
            {
                "$inc": {"counts.purchase": 1, "traits.orders": 1, "traits.ltv": 0.0},
                "$set": {**SEEN, "cart.items": 0, "cart.value": 0, "cart.updatedAt": AT},
                "$setOnInsert": SET_ON_INSERT,
            },
            id="purchase-without-revenue",
        ),
    ],
)
def test_profile_update(tracked: TrackedEvent, update: dict[str, Any]) -> None:
    assert profile_update(tracked) == update


def test_update_paths_never_conflict() -> None:
    # MongoDB rejects an update that names one path in two operators.
    for event_type in EventType:
        tracked = event(event_type, price=5.0, revenue=5.0, category="c")
        update = profile_update(tracked)
        paths = [path for operator in update.values() for path in operator]
        assert len(paths) == len(set(paths)), event_type


def test_event_types_are_strings() -> None:
    assert [t.value for t in EventType] == [
        "page_view",
        "click",
        "add_to_cart",
        "purchase",
        "block_view",
        "remove_from_cart",
        "search",
        "identify",
        "consent",
        "custom",
    ]
    assert EventType("purchase") is EventType.PURCHASE
