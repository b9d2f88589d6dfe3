"""Event validation: every problem named by index, field and reason; clamped timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from profiles.events import EventType
from profiles.validation import Event, Problem, RequestDefaults, parse_event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(hours=24)


def parse(raw: Any, **kwargs: Any) -> Event | list[Problem]:
    return parse_event(raw, 7, now=NOW, max_skew=SKEW, **kwargs)


def base(**fields: Any) -> dict[str, Any]:
    return {"type": "page_view", "eventId": "e-1", "visitorId": "v-1", **fields}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        pytest.param(base(type=None), "type", "is required", id="type-missing"),
        pytest.param(base(type=3), "type", "must be a string", id="type-number"),
        pytest.param(base(eventId=None), "eventId", "is required", id="id-missing"),
        pytest.param(base(eventId="a b"), "eventId", "must be 1-128 letters", id="id-space"),
        pytest.param(base(visitorId=5), "visitorId", "must be a string", id="visitor-number"),
        pytest.param(base(timestamp=True), "timestamp", "must be an ISO 8601", id="ts-bool"),
        pytest.param(
            base(timestamp="2026-06-01T10:00"), "timestamp", "needs a timezone", id="naive"
        ),
        pytest.param(base(timestamp=-5), "timestamp", "out of range", id="ts-negative"),
        pytest.param(base(context=[]), "context", "must be an object", id="context-list"),
        pytest.param(base(context={"utm": {"x": "1"}}), "context.utm.x", "unknown UTM", id="utm"),
        pytest.param(base(context={"country": "Germany"}), "context.country", "alpha-2", id="cc"),
        pytest.param(base(properties=1), "properties", "must be an object", id="props-number"),
        pytest.param(base(properties={"quantity": 0}), "properties.quantity", "between 1", id="q0"),
        pytest.param(base(properties={"quantity": 1.5}), "properties.quantity", "integer", id="qf"),
        pytest.param(
            base(properties={"price": float("nan")}), "properties.price", "non-negative", id="nan"
        ),
        pytest.param(
            base(properties={"price": 1e9 + 1}), "properties.price", "below 1e9", id="big"
        ),
        pytest.param(
            base(properties={"category": "a.b"}), "properties.category", "letters", id="dot"
        ),
        pytest.param(
            base(properties={"category": "$set"}), "properties.category", "letters", id="dollar"
        ),
        pytest.param(
            base(properties={"tags": ["ok", "n o"]}), "properties.tags", "tags are", id="tag"
        ),
        pytest.param(
            base(properties={"currency": "eur"}), "properties.currency", "ISO 4217", id="cur"
        ),
        pytest.param(base(properties={"a.b": 1}), "properties.a.b", "property names", id="key-dot"),
        pytest.param(
            base(properties={"deep": {"x": 1}}), "properties.deep", "string, number", id="nested"
        ),
        pytest.param(
            base(type="add_to_cart"), "properties.price", "needs the item's price", id="cart"
        ),
        pytest.param(
            base(type="remove_from_cart"), "properties.productId", "needs the productId", id="rm"
        ),
        pytest.param(base(type="search"), "properties.query", "needs the query", id="search"),
        pytest.param(base(type="identify"), "userId", "needs the userId", id="identify"),
        pytest.param(base(type="consent"), "properties", "consent needs", id="consent"),
        pytest.param(base(type="custom"), "properties.name", "need a name", id="custom"),
        pytest.param(base(extra=1), "extra", "unknown field", id="unknown"),
    ],
)
def test_each_problem_names_index_field_and_reason(raw: dict, field: str, message: str) -> None:
    problems = parse(raw)
    assert isinstance(problems, list)
    assert all(p.index == 7 for p in problems)
    found = {p.field: p.message for p in problems}
    assert field in found, problems
    assert message in found[field]


def test_all_problems_are_reported_at_once() -> None:
    problems = parse({"type": "x", "properties": {"price": -1}})
    assert isinstance(problems, list)
    assert {p.field for p in problems} == {"type", "eventId", "visitorId", "properties.price"}


def test_valid_event_with_defaults_from_the_request() -> None:
    defaults = RequestDefaults(visitor_id="cookie-id", user_agent="iPhone", country="DE")
    event = parse(
        {"type": "PURCHASE", "eventId": "e", "properties": {"revenue": 5}}, defaults=defaults
    )
    assert isinstance(event, Event)
    assert event.type is EventType.PURCHASE
    assert event.visitor_id == "cookie-id"
    assert event.context == {"userAgent": "iPhone", "device": "mobile", "country": "DE"}
    assert event.timestamp == NOW
    assert event.properties == {"revenue": 5.0}


@pytest.mark.parametrize(
    ("sent", "stored", "original"),
    [
        pytest.param("2026-06-01T10:00:00+02:00", NOW - timedelta(hours=4), None, id="in-bound"),
        pytest.param(1780315200000, datetime(2026, 6, 1, 12, 0, tzinfo=UTC), None, id="epoch-ms"),
        pytest.param(
            "2026-06-03T12:00:00Z", NOW, datetime(2026, 6, 3, 12, tzinfo=UTC), id="future"
        ),
        pytest.param("2020-01-01T00:00:00Z", NOW, datetime(2020, 1, 1, tzinfo=UTC), id="past"),
    ],
)
def test_timestamps_beyond_the_skew_bound_are_clamped(
    sent: Any, stored: datetime, original: datetime | None
) -> None:
    event = parse(base(timestamp=sent))
    assert isinstance(event, Event)
    assert event.timestamp == stored
    assert event.original_timestamp == original


def test_graphql_may_omit_the_event_id() -> None:
    raw = {"type": "click", "visitorId": "v"}
    event = parse(raw, require_event_id=False, generated_id="gen")
    assert isinstance(event, Event)
    assert event.event_id == "gen"
    assert isinstance(parse(raw), list)


def test_stored_document_round_trips() -> None:
    event = parse(base(userId="u", blockId="b", variantId="x", properties={"tags": ["a", "a"]}))
    assert isinstance(event, Event)
    doc = event.document("c-1")
    assert doc["_id"] == "e-1"
    assert doc["commit"] == "c-1"
    assert doc["properties"] == {"tags": ["a"]}
    again = Event.from_document(doc)
    assert (again.event_id, again.user_id, again.block_id) == ("e-1", "u", "b")
