"""Event validation: every problem named by index, field and reason; clamped timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest

from profiles.events import EventType
from profiles.validation import Event, Problem, RequestDefaults, parse_event, storage_problems

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(hours=24)


def parse(raw: Any, **kwargs: Any) -> Event | list[Problem]:
    return parse_event(raw, 7, now=NOW, max_skew=SKEW, **kwargs)


def base(**fields: Any) -> dict[str, Any]:
    return {"type": "page_view", "eventId": "e-1", "visitorId": "v-1", **fields}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


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


HOSTILE_TIMESTAMPS = [
    pytest.param("0001-01-01T00:00:00+01:00", "outside the supported range", id="year1-before-utc"),
    pytest.param(
        "9999-12-31T23:59:59-01:00", "outside the supported range", id="year9999-after-utc"
    ),
    pytest.param("0000-01-01T00:00:00Z", "the year must be 0001-9999", id="year0"),
    pytest.param("10000-01-01T00:00:00Z", "the year must be 0001-9999", id="year10000"),
    pytest.param("+002020-01-01T00:00:00Z", "the year must be 0001-9999", id="expanded-year"),
    pytest.param("2020-01-01T00:00:00+24:00", "offset must be less than 24 hours", id="offset-24h"),
    pytest.param("2020-01-01T00:00:00+99:99", "less than 24 hours", id="offset-99"),
    pytest.param("2016-12-31T23:59:60Z", "leap seconds", id="leap-second"),
    pytest.param("2020-01-01T24:00:00Z", "hour 24", id="hour-24"),
    pytest.param("2021-02-29T00:00:00Z", "out of range for the month", id="feb-29"),
    pytest.param("2020-13-01T00:00:00Z", "month must be 01-12", id="month-13"),
    pytest.param("2020-01-01T00:00:00\ud800Z", "ISO 8601", id="surrogate"),
    pytest.param("2020-01-01T00:00:00Z" + " " * 10_000, "ISO 8601", id="huge"),
    pytest.param(float("nan"), "out of range", id="nan"),
    pytest.param(float("inf"), "out of range", id="infinity"),
    pytest.param(-float("inf"), "out of range", id="minus-infinity"),
    pytest.param(2**70, "out of range", id="2^70"),
    pytest.param(10**400, "out of range", id="10^400"),
    pytest.param(-(2**70), "out of range", id="-2^70"),
    pytest.param(1e308, "out of range", id="1e308"),
]


@pytest.mark.parametrize(("sent", "message"), HOSTILE_TIMESTAMPS)
def test_impossible_timestamps_are_a_precise_problem(sent: Any, message: str) -> None:
    problems = parse(base(timestamp=sent))
    assert isinstance(problems, list), problems
    assert [p.field for p in problems] == ["timestamp"]
    assert message in problems[0].message


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("0001-01-01T00:00:00Z", id="year1"),
        pytest.param("9999-12-31T23:59:59Z", id="year9999"),
        pytest.param("0001-01-01T00:00:00-01:00", id="year1-west"),
        pytest.param("2020-01-01T00:00:00+23:59", id="offset-23:59"),
        pytest.param(99_999_999_999_999, id="epoch-max"),
    ],
)
def test_extreme_but_valid_timestamps_are_clamped_and_storable(sent: Any) -> None:
    event = parse(base(timestamp=sent))
    assert isinstance(event, Event), event
    assert event.timestamp == NOW
    assert event.original_timestamp is not None
    bson.encode(event.document("c"))


SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        pytest.param(base(properties={"n": 2**63}), "properties.n", "64-bit", id="int-2^63"),
        pytest.param(base(properties={"n": 2**70}), "properties.n", "64-bit", id="int-2^70"),
        pytest.param(base(properties={"n": -(2**70)}), "properties.n", "64-bit", id="int-neg"),
        pytest.param(base(properties={"price": 2**70}), "properties.price", "below 1e9", id="p"),
        pytest.param(
            base(properties={"revenue": 2**70}), "properties.revenue", "below 1e9", id="r-2^70"
        ),
        pytest.param(
            base(properties={"price": 10**400}), "properties.price", "below 1e9", id="p-10^400"
        ),
        pytest.param(
            base(properties={"revenue": float("inf")}), "properties.revenue", "below", id="inf"
        ),
        pytest.param(
            base(properties={"quantity": 2**70}), "properties.quantity", "between", id="q-2^70"
        ),
        pytest.param(base(properties={"x": float("nan")}), "properties.x", "finite", id="x-nan"),
        pytest.param(base(properties={"x": float("-inf")}), "properties.x", "finite", id="x-inf"),
        pytest.param(base(properties={"note": SURROGATE}), "properties.note", "surrogate", id="s"),
        pytest.param(
            base(properties={"productId": "a" * 129}), "properties.productId", "128", id="pid"
        ),
        pytest.param(base(userId="u" + SURROGATE), "userId", "surrogate", id="user"),
        pytest.param(base(blockId=SURROGATE), "blockId", "surrogate", id="block"),
        pytest.param(base(variantId=SURROGATE), "variantId", "surrogate", id="variant"),
        pytest.param(
            base(context={"page": "/" + SURROGATE}), "context.page", "surrogate", id="page"
        ),
        pytest.param(
            base(context={"userAgent": SURROGATE}), "context.userAgent", "surrogate", id="ua"
        ),
        pytest.param(
            base(context={"utm": {"source": SURROGATE}}),
            "context.utm.source",
            "surrogate",
            id="utm",
        ),
        pytest.param(base(eventId=SURROGATE), "eventId", "surrogate", id="event-id"),
        pytest.param(base(type=SURROGATE), "type", "unknown type '\\\\ud800'", id="type"),
        pytest.param(base(**{SURROGATE: 1}), "\\ud800", "unknown field", id="top-key"),
        pytest.param(
            base(properties={SURROGATE: 1}), "properties.\\ud800", "property names", id="prop-key"
        ),
        pytest.param(
            base(context={SURROGATE: 1}), "context.\\ud800", "unknown field", id="context-key"
        ),
        pytest.param(
            base(properties={"$set": 1}), "properties.$set", "property names", id="dollar-key"
        ),
        pytest.param(base(properties={"a\x00": 1}), "properties.a\x00", "names", id="nul-key"),
        pytest.param(
            base(properties={f"k{i}": i for i in range(65)}), "properties", "at most 64", id="65"
        ),
        pytest.param(
            base(properties={"deep": nested(200)}), "properties.deep", "string, number", id="deep"
        ),
        pytest.param(
            base(properties={f"k{i}": "x" * 1000 for i in range(40)}), "", "at most 32768", id="big"
        ),
    ],
)
def test_unstorable_values_are_a_precise_problem(raw: dict, field: str, message: str) -> None:
    problems = parse(raw)
    assert isinstance(problems, list), problems
    found = {p.field: p.message for p in problems}
    assert field in found, problems
    assert message in found[field]
    # Every message can be sent back as UTF-8 JSON.
    for problem in problems:
        json.dumps(problem.as_dict(), ensure_ascii=False).encode("utf-8")


def test_long_unknown_names_are_truncated_in_messages() -> None:
    problems = parse(base(**{"x" * 10_000: 1}))
    assert isinstance(problems, list)
    assert len(problems[0].field) < 100


def test_storage_problems_name_every_unstorable_field() -> None:
    document = {
        "_id": "e",
        "big": 2**64,
        "text": ["ok", SURROGATE],
        "nested": {"$where": 1, "a.b": 2, "nul\x00": 3, "ok": {"deeper": nested(20)}},
    }
    problems = dict(storage_problems(document, max_bytes=1_000_000, names={"_id": "eventId"}))
    assert problems == {
        "big": "must be a 64-bit integer (between -2^63 and 2^63-1)",
        "text.1": "holds a lone UTF-16 surrogate (not valid Unicode)",
        "nested.$where": "field names may not hold NUL or '.', nor start with '$'",
        "nested.a.b": "field names may not hold NUL or '.', nor start with '$'",
        "nested.nul\x00": "field names may not hold NUL or '.', nor start with '$'",
        "nested.ok.deeper.x.x.x.x.x": "is nested deeper than 8 levels",
    }
    assert storage_problems({"_id": "e", "n": 2**63 - 1}, max_bytes=100) == []
    assert storage_problems({"_id": "e", "s": "x" * 200}, max_bytes=100) == [
        ("", "is 224 bytes when stored; at most 100 are accepted")
    ]
