"""Derived traits (pure): sessions, RFM, decayed interests, cart, recently viewed, merges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest

from blocks.context import profile_attributes
from profiles.events import EventType
from profiles.traits import (
    MAX_ALIASES,
    MAX_CART_LINES,
    MAX_PROFILE_BYTES,
    PURCHASED,
    RECENT_COMMITS,
    RECENTLY_VIEWED,
    TOP_INTERESTS,
    TOP_TAGS,
    apply_events,
    merge_profiles,
)
from profiles.validation import MAX_PRODUCT_ID, Event, parse_event

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_ids = iter(range(1_000_000))


def ev(kind: str, at: datetime = T0, visitor: str = "v", **props: Any) -> Event:
    raw = {"type": kind, "eventId": f"e{next(_ids)}", "visitorId": visitor, "properties": props}
    if kind == "identify":
        raw["userId"] = "u1"
    raw["timestamp"] = at.isoformat()
    parsed = parse_event(raw, 0, now=at, max_skew=timedelta(days=1))
    assert isinstance(parsed, Event), parsed
    return parsed


def run(
    events: list[Event], profile: dict[str, Any] | None = None, commit: str | None = None
) -> dict[str, Any]:
    commit = commit or f"c{next(_ids)}"
    doc = apply_events(profile, "v", events, now=T0, half_life_days=30.0, commit=commit)
    assert doc is not None
    return doc


def test_sessions_split_after_thirty_idle_minutes() -> None:
    times = [T0, T0 + timedelta(minutes=29), T0 + timedelta(minutes=60), T0 + timedelta(hours=5)]
    doc = run([ev("page_view", t) for t in reversed(times)])
    assert doc["traits"]["sessions"] == 3
    assert doc["traits"]["firstSeen"] == T0
    assert doc["traits"]["lastSeen"] == times[-1]
    assert doc["counts"] == {"page_view": 4}


def test_rfm_and_ltv() -> None:
    doc = run([ev("purchase", T0, revenue=100.0), ev("purchase", T0, price=20.0, quantity=3)])
    assert doc["traits"]["orders"] == 2
    assert doc["traits"]["ltv"] == 160.0
    attributes = profile_attributes(doc, T0 + timedelta(days=3))
    assert attributes["rfm"] == {"recency_days": 3.0, "frequency": 2, "monetary": 160.0}


def test_interests_decay_with_the_half_life_at_read_time() -> None:
    doc = run([ev("page_view", category="electronics"), ev("click", category="electronics")])
    assert doc["interests"]["electronics"] == {"v": 2.0, "t": T0}
    assert profile_attributes(doc, T0)["interests"] == {"electronics": 2.0}
    assert profile_attributes(doc, T0 + timedelta(days=30))["interests"]["electronics"] == 1.0
    later = run([ev("page_view", T0 + timedelta(days=60), category="electronics")], doc)
    assert later["interests"]["electronics"]["v"] == pytest.approx(1.5)


def test_cart_add_remove_and_purchase_clears_it() -> None:
    doc = run(
        [
            ev("add_to_cart", productId="A", price=10.0, quantity=2),
            ev("add_to_cart", productId="B", price=5.5),
            ev("remove_from_cart", productId="A", quantity=1),
        ]
    )
    assert (doc["cart"]["items"], doc["cart"]["value"]) == (2, 15.5)
    doc = run([ev("remove_from_cart", productId="B")], doc)
    assert (doc["cart"]["items"], doc["cart"]["value"]) == (1, 10.0)
    doc = run([ev("purchase", revenue=10.0)], doc)
    assert (doc["cart"]["items"], doc["cart"]["lines"]) == (0, [])


def test_recently_viewed_is_bounded_and_deduplicated() -> None:
    events = [ev("page_view", T0 + timedelta(seconds=i), productId=f"P{i % 25}") for i in range(60)]
    doc = run(events)
    viewed = [item["productId"] for item in doc["recentlyViewed"]]
    assert len(viewed) == RECENTLY_VIEWED
    assert len(set(viewed)) == RECENTLY_VIEWED
    assert viewed[0] == "P9"  # the last one viewed (i = 59)


def test_device_and_country_come_from_the_latest_event() -> None:
    raw = {
        "type": "page_view", "eventId": "d1", "visitorId": "v",
        "context": {"userAgent": "Mozilla/5.0 (iPhone)", "country": "de"},
    }  # fmt: skip
    parsed = parse_event(raw, 0, now=T0, max_skew=timedelta(days=1))
    assert isinstance(parsed, Event)
    doc = run([parsed])
    assert (doc["traits"]["device"], doc["traits"]["country"]) == ("mobile", "DE")


def test_a_commit_is_applied_once() -> None:
    event = ev("purchase", revenue=5.0)
    doc = run([event], commit="c-1")
    assert apply_events(doc, "v", [event], now=T0, half_life_days=30.0, commit="c-1") is None
    assert doc["traits"]["orders"] == 1
    assert doc["commits"] == ["c-1"]


def test_consent_event_updates_consent() -> None:
    doc = run([ev("consent", analytics=False, personalization=False, source="banner")])
    assert doc["consent"] == {
        "analytics": False, "personalization": False, "at": T0, "source": "banner",
    }  # fmt: skip


def test_merge_sums_counts_combines_decayed_interests_and_bounds_lists() -> None:
    known = run([ev("purchase", revenue=100.0, category="outdoor")])
    known["_id"] = "known"
    anon = run(
        [
            ev("page_view", T0 - timedelta(days=30), productId="X", category="outdoor"),
            ev("add_to_cart", T0 - timedelta(days=30), productId="X", price=3.0),
        ]
    )
    anon["_id"] = "anon"
    merged = merge_profiles(known, anon, now=T0)
    assert merged["counts"] == {"purchase": 1, "page_view": 1, "add_to_cart": 1}
    assert merged["traits"]["orders"] == 1
    assert merged["traits"]["firstSeen"] == T0 - timedelta(days=30)
    assert merged["traits"]["lastSeen"] == T0
    assert merged["traits"]["sessions"] == 2
    assert merged["interests"]["outdoor"] == {"v": pytest.approx(1.5), "t": T0}
    assert merged["cart"]["items"] == 1
    assert merged["aliases"] == ["anon"]
    assert merged["recentlyViewed"][0]["productId"] == "X"


def test_event_types_cover_the_documented_list() -> None:
    assert {t.value for t in EventType} == {
        "page_view", "block_view", "click", "add_to_cart", "remove_from_cart",
        "purchase", "search", "identify", "consent", "custom",
    }  # fmt: skip


def max_event(kind: str, i: int, at: datetime, **props: Any) -> Event:
    """An event with every field the profile keeps at its validated maximum length."""
    raw = {
        "type": kind, "eventId": f"max{next(_ids)}", "visitorId": "v", "userId": "u" * 256,
        "timestamp": at.isoformat(), "properties": props,
        "context": {"page": "/" + "p" * 2047, "country": "DE", "userAgent": "Mozilla" * 140},
    }  # fmt: skip
    parsed = parse_event(raw, 0, now=at, max_skew=timedelta(days=1))
    assert isinstance(parsed, Event), parsed
    return parsed


def test_the_largest_possible_profile_stays_under_the_documented_bound() -> None:
    doc: dict[str, Any] | None = None
    bought = PURCHASED + 5  # first rounds: purchases (each empties the cart), more than kept
    for i in range(bought + RECENT_COMMITS + 10):  # one commit per round: more than every bound
        at = T0 + timedelta(seconds=i)
        category = f"{i:03d}".ljust(64, "c")
        product = f"{i:03d}".ljust(MAX_PRODUCT_ID, "p")
        tags = [f"{i:03d}{j:02d}".ljust(64, "t") for j in range(20)]
        events = [
            max_event("page_view", i, at, category=category, tags=tags, productId=product),
            max_event("add_to_cart", i, at, productId=product, category=category, price=1e9 - 1),
            max_event("consent", i, at, analytics=True, source="s" * 1024),
        ]
        if i < bought:
            events.append(max_event("purchase", i, at, productId=product, revenue=1e9 - 1))
        doc = apply_events(doc, "v" * 128, events, now=at, half_life_days=30.0, commit=f"{i:032d}")
        assert doc is not None
    assert doc is not None
    doc["userId"] = "u" * 256
    for n in range(MAX_ALIASES + 10):
        source = apply_events(
            None, f"{n:03d}".ljust(128, "a"), [], now=T0, half_life_days=30.0, commit=f"s{n}"
        )
        assert source is not None
        doc = merge_profiles(doc, source, now=T0)
    assert len(doc["interests"]) == TOP_INTERESTS
    assert len(doc["tags"]) == TOP_TAGS
    assert len(doc["recentlyViewed"]) == RECENTLY_VIEWED
    assert len(doc["purchased"]) == PURCHASED
    assert len(doc["cart"]["lines"]) == MAX_CART_LINES
    assert len(doc["commits"]) == RECENT_COMMITS
    assert len(doc["aliases"]) == MAX_ALIASES
    size = len(bson.encode(doc))
    assert size <= MAX_PROFILE_BYTES, size


def test_top_interests_keep_the_strongest_and_heal_an_oversized_profile() -> None:
    strong = [ev("page_view", T0, category="outdoor", tags=["tent"]) for _ in range(5)]
    doc = run(strong)
    attack = [
        ev("page_view", T0, category=f"junk{i}", tags=[f"junk{i}-{j}" for j in range(20)])
        for i in range(500)
    ]
    doc = run(attack, doc)
    assert len(doc["interests"]) == TOP_INTERESTS
    assert len(doc["tags"]) == TOP_TAGS
    assert doc["interests"]["outdoor"]["v"] == 5.0
    assert doc["tags"]["tent"]["v"] == 5.0
    # A profile written before the bounds existed shrinks on its next update.
    legacy = dict(doc, interests={f"old{i}": float(i) for i in range(10_000)})
    healed = run([ev("page_view", T0)], legacy)
    assert len(healed["interests"]) == TOP_INTERESTS
    assert min(healed["interests"].values()) == 10_000 - TOP_INTERESTS
