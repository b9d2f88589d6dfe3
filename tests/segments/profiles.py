"""Profiles of three kinds of visitors, with clear differences, for segment tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

#: The kinds: (device, favourite interest, orders range, page views range, cart items).
KINDS: dict[str, tuple[str, str, tuple[int, int], tuple[int, int], int]] = {
    "buyer": ("mobile", "outdoor", (4, 9), (40, 90), 0),
    "browser": ("desktop", "climbing", (0, 0), (2, 8), 0),
    "carter": ("tablet", "water", (0, 1), (10, 25), 3),
}


def profile(kind: str, index: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    """One visitor of `kind`, as ingestion writes profiles."""
    device, interest, orders_range, views_range, cart = KINDS[kind]
    orders = rng.randint(*orders_range)
    views = rng.randint(*views_range)
    traits: dict[str, Any] = {
        "pageViews": views,
        "sessions": max(1, views // 4),
        "clicks": views // 3,
        "orders": orders,
        "ltv": round(orders * rng.uniform(60, 140), 2),
        "device": device,
        "lastSeen": now - timedelta(days=rng.uniform(0, 5)),
        "firstSeen": now - timedelta(days=120),
    }
    if orders:
        traits["lastOrderAt"] = now - timedelta(days=rng.uniform(1, 20))
    doc: dict[str, Any] = {
        "_id": f"{kind}-{index:04d}",
        "version": 1,
        "traits": traits,
        "counts": {"page_view": views},
        "cart": {"items": cart, "value": cart * 40.0},
        "interests": {interest: {"v": rng.uniform(3, 9), "t": now}},
        "decay": {"halfLifeDays": 30.0},
    }
    if rng.random() < 0.3:
        doc["interests"]["travel"] = {"v": rng.uniform(0.5, 1.5), "t": now}
    return doc


def population(now: datetime, per_kind: int = 60, seed: int = 4) -> list[dict[str, Any]]:
    """`per_kind` visitors of each kind."""
    rng = random.Random(seed)
    return [profile(kind, i, now, rng) for kind in KINDS for i in range(per_kind)]
