"""Interactions and the item-to-item models, on small hand-made data."""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import joblib
import pytest

from blocks.catalog import Catalog, Product
from profiles.validation import Event, parse_event
from scoring.recommendations.interactions import (
    CART,
    PURCHASE,
    VIEW,
    Interaction,
    baskets,
    catalog_from_events,
    decay,
    interactions,
)
from scoring.recommendations.models import (
    CONTENT,
    HYBRID,
    ITEM_CF,
    POPULARITY,
    Blend,
    Params,
    fit,
    top_k,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def event(kind: str, visitor: str, minutes: float, **props: Any) -> Event:
    at = NOW - timedelta(days=1) + timedelta(minutes=minutes)
    raw = {
        "type": kind,
        "eventId": f"{visitor}-{kind}-{minutes}",
        "visitorId": visitor,
        "timestamp": at.isoformat(),
        "properties": props,
    }
    parsed = parse_event(raw, 0, now=NOW, max_skew=timedelta(days=3650))
    assert isinstance(parsed, Event), parsed
    return parsed


def test_touches_replay_the_cart_for_purchases_without_a_product() -> None:
    touches = interactions(
        [
            event("page_view", "v", 0, productId="A", category="outdoor"),
            event("add_to_cart", "v", 1, productId="A", price=10.0),
            event("add_to_cart", "v", 2, productId="B", price=5.0),
            event("remove_from_cart", "v", 3, productId="B"),
            event("add_to_cart", "v", 4, productId="C", price=5.0),
            event("purchase", "v", 5, revenue=15.0),
            event("purchase", "v", 60, productId="D", revenue=1.0),
            event("page_view", "v", 61),  # no product: not a touch
            event("search", "v", 62, query="tent"),
        ]
    )
    assert [(t.item, t.kind) for t in touches] == [
        ("A", VIEW),
        ("A", CART),
        ("B", CART),
        ("C", CART),
        ("A", PURCHASE),
        ("C", PURCHASE),
        ("D", PURCHASE),
    ]
    # One basket per session: A and C carted and bought together (B was removed later,
    # but carting it still says it went with them); D alone an hour later is no basket.
    assert baskets(touches) == [["A", "B", "C"]]


def test_weights_halve_every_half_life() -> None:
    assert decay(4.0, NOW - timedelta(days=30), NOW, 30.0) == pytest.approx(2.0)
    assert decay(4.0, NOW - timedelta(days=60), NOW, 30.0) == pytest.approx(1.0)
    assert decay(4.0, NOW - timedelta(days=60), NOW, 0.0) == 4.0
    assert decay(4.0, NOW + timedelta(days=1), NOW, 30.0) == 4.0


def test_a_catalogue_from_events_takes_their_latest_properties() -> None:
    catalog = catalog_from_events(
        [
            event("page_view", "v", 0, productId="A", category="old", name="Tent"),
            event("page_view", "v", 5, productId="A", category="outdoor", tags=["tent"]),
            event("add_to_cart", "w", 1, productId="B", price=9.5),
        ]
    )
    assert catalog.source == "events"
    assert catalog.get("A") == Product(
        sku="A", name="Tent", price=0.0, category="outdoor", tags=("tent",)
    )
    assert catalog.get("B") == Product(sku="B", name="B", price=9.5)


def _catalog() -> Catalog:
    rows = [
        ("T1", "Dome Tent", "outdoor", ("tent",)),
        ("T2", "Tunnel Tent", "outdoor", ("tent",)),
        ("T3", "Ultralight Tent", "outdoor", ("tent", "ultralight")),
        ("R1", "Dynamic Rope", "climbing", ("rope",)),
        ("R2", "Static Rope", "climbing", ("rope",)),
        ("H1", "Harness", "climbing", ("harness",)),
        ("S1", "Road Shoe", "running", ("shoe",)),
        ("N1", "Never Touched Tent", "outdoor", ("tent",)),
    ]
    return Catalog(
        products=tuple(
            Product(sku=sku, name=name, price=10.0, category=cat, tags=tags)
            for sku, name, cat, tags in rows
        ),
        source="test",
    )


def _touch(visitor: str, item: str, kind: str = VIEW, days: float = 1.0) -> Interaction:
    return Interaction(visitor, item, kind, NOW - timedelta(days=days))


def _touches() -> list[Interaction]:
    touches = []
    # Campers touch tents, climbers ropes and harnesses; S1 is the bestseller of all.
    for n in range(6):
        touches += [
            _touch(f"camper{n}", "T1"),
            _touch(f"camper{n}", "T2"),
            _touch(f"camper{n}", "S1"),
        ]
        touches += [
            _touch(f"climber{n}", "R1"),
            _touch(f"climber{n}", "H1"),
            _touch(f"climber{n}", "S1"),
        ]
    touches += [_touch("climber0", "R2"), _touch("climber1", "R2")]
    for n in range(6):
        touches += [_touch(f"runner{n}", "S1")]
    # Bought together: a rope and a harness, three times.
    for n in range(3):
        touches += [_touch(f"buyer{n}", "R1", CART), _touch(f"buyer{n}", "H1", CART)]
    return touches


def test_item_cf_content_popularity_and_hybrid() -> None:
    model = fit(_touches(), _catalog(), now=NOW, params=Params(shrink=0.0))
    camper = model.history([("T1", 1.0, NOW)], NOW)
    # CF: what other campers touched (T2, then the bestseller), never the climbers' gear.
    assert model.recommend(camper, 2, model=ITEM_CF) == ["T2", "S1"]
    # Content: other tents first, including the one nobody touched yet (a cold item).
    content = model.recommend(camper, 3, model=CONTENT)
    assert set(content) == {"T2", "T3", "N1"}
    # Popularity: the bestseller for everyone.
    assert model.recommend(camper, 1, model=POPULARITY) == ["S1"]
    # The hybrid: a visitor without history gets popularity (cold start).
    assert model.recommend({}, 3) == model.popular(3)
    assert model.recommend(camper, 3, model=HYBRID)[0] in {"T2", "S1"}
    # Exclusions (bought, in the cart) are never recommended.
    assert "T2" not in model.recommend(camper, 5, exclude={"T2"})
    # Similar to a product: its content and CF neighbours, never itself.
    similar = model.similar("R1", 3)
    assert "R1" not in similar
    assert set(similar) <= {"R2", "H1", "S1"}
    assert model.similar("unknown", 3) == []
    # Bought together: the harness goes with the rope.
    assert model.bought_together(["R1"], 2) == ["H1"]
    assert model.bought_together(["T1"], 2) == []


def test_the_blend_weighs_the_parts() -> None:
    model = fit(_touches(), _catalog(), now=NOW)
    camper = model.history([("T1", 1.0, NOW)], NOW)
    only_pop = model.scores(camper, HYBRID, Blend(0.0, 0.0, 1.0))
    assert [model.items[i] for i in top_k(only_pop, 1)] == ["S1"]
    only_content = model.scores(camper, HYBRID, Blend(0.0, 1.0, 0.0))
    assert model.items[top_k(only_content, 1)[0]] in {"T2", "T3", "N1"}


def test_top_k_keeps_positive_scores_best_first() -> None:
    import numpy as np

    assert top_k(np.array([0.0, 3.0, -1.0, 3.0, 1.0]), 10) == [1, 3, 4]
    assert top_k(np.array([0.0, 0.0]), 3) == []
    assert top_k(np.array([1.0, 5.0, 3.0, 4.0]), 2) == [1, 3]


def test_the_model_holds_no_visitor_id() -> None:
    model = fit(_touches(), _catalog(), now=NOW)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    data = buffer.getvalue() + pickle.dumps(model)
    for visitor in ("camper0", "climber1", "runner5", "buyer2"):
        assert visitor.encode() not in data
    assert joblib.load(io.BytesIO(buffer.getvalue())).recommend({}, 2) == model.recommend({}, 2)


def test_items_outside_the_catalogue_are_left_out() -> None:
    touches = [*_touches(), _touch("camper0", "ELSEWHERE"), _touch("camper1", "ELSEWHERE")]
    model = fit(touches, _catalog(), now=NOW)
    assert "ELSEWHERE" not in model.items
    assert model.history([("ELSEWHERE", 1.0, NOW)], NOW) == {}
