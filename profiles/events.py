"""Tracked events and the atomic profile update each one makes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """The event types Tessera ingests (documented in docs/profile.md)."""

    PAGE_VIEW = "page_view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    BLOCK_VIEW = "block_view"
    REMOVE_FROM_CART = "remove_from_cart"
    SEARCH = "search"
    IDENTIFY = "identify"
    CONSENT = "consent"
    CUSTOM = "custom"


_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class EventError(ValueError):
    """An event that cannot be applied; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TrackedEvent:
    """One visitor event, already validated."""

    type: EventType
    visitor_id: str
    timestamp: datetime
    block_id: str | None = None
    variant_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    revenue: float | None = None

    def __post_init__(self) -> None:
        if self.quantity < 1 or self.quantity > 10_000:
            raise EventError("quantity", "must be between 1 and 10000")
        for name in ("price", "revenue"):
            value = getattr(self, name)
            if value is not None and (value < 0 or value > 1e9 or value != value):
                raise EventError(name, "must be a non-negative amount below 1e9")
        # Categories become field names in the profile: no dots, no `$`.
        if self.category is not None and not _KEY.fullmatch(self.category):
            raise EventError("category", "must be 1-64 letters, digits, '_' or '-'")
        if self.type is EventType.ADD_TO_CART and self.price is None:
            raise EventError("price", "add_to_cart needs the item's price")


def profile_update(event: TrackedEvent) -> dict[str, Any]:
    """The single MongoDB update document that applies `event` atomically."""
    now = event.timestamp
    inc: dict[str, Any] = {f"counts.{event.type.value}": 1}
    set_: dict[str, Any] = {"traits.lastSeen": now, "updatedAt": now}
    if event.type is EventType.PAGE_VIEW:
        inc["traits.pageViews"] = 1
    elif event.type is EventType.CLICK:
        inc["traits.clicks"] = 1
    elif event.type is EventType.ADD_TO_CART:
        inc["cart.items"] = event.quantity
        inc["cart.value"] = round((event.price or 0.0) * event.quantity, 2)
        set_["cart.updatedAt"] = now
    elif event.type is EventType.PURCHASE:
        inc["traits.orders"] = 1
        inc["traits.ltv"] = event.revenue or 0.0
        set_.update({"cart.items": 0, "cart.value": 0, "cart.updatedAt": now})
    if event.category:
        inc[f"interests.{event.category}"] = 1
    return {
        "$inc": inc,
        "$set": set_,
        "$setOnInsert": {"traits.firstSeen": now, "createdAt": now},
    }
