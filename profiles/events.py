"""The event types Tessera ingests."""

from __future__ import annotations

from enum import StrEnum


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
