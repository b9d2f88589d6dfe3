"""The targeting context: profile attributes, derived values, request facts, audiences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from blocks.audiences import Audience, AudienceSet
from blocks.context import RequestFacts, build_context, profile_attributes

NOW = datetime(2026, 6, 7, 18, 30, tzinfo=UTC)  # a Sunday


def audience_set(**conditions: dict[str, Any]) -> AudienceSet:
    return AudienceSet(
        Audience.from_document({"name": name, "condition": condition})
        for name, condition in conditions.items()
    )


DEMO_AUDIENCES = audience_set(
    new_visitor={"traits.pageViews": {"$lt": 3}},
    returning={"traits.pageViews": {"$gte": 3}},
    high_value={"$or": [{"traits.ltv": {"$gte": 500}}, {"traits.orders": {"$gte": 3}}]},
    cart_abandoner={"cart.items": {"$gt": 0}, "cart.idleMinutes": {"$gte": 30}},
    mobile={"device": "mobile"},
    dach={"country": {"$in": ["DE", "AT", "CH"]}},
)


# -- profile_attributes -----------------------------------------------------------


def test_no_profile_is_an_unknown_visitor_with_zero_counters() -> None:
    assert profile_attributes(None, NOW) == {
        "known": False,
        "traits": {"pageViews": 0, "orders": 0, "ltv": 0},
        "cart": {},
    }


def test_known_profile_copies_targetable_keys_only() -> None:
    profile = {
        "_id": "v1",
        "traits": {"pageViews": 7, "orders": 1},
        "cart": {"items": 2, "value": 80.0},
        "counts": {"page_view": 7},
        "interests": {"outdoor": 4},
        "scores": {"churn": 0.2},
        "userId": "u-9",
        "consent": {"personalization": True},
        "createdAt": NOW,
    }
    assert profile_attributes(profile, NOW) == {
        "known": True,
        # Counters the profile has not reached read as zero (here: ltv).
        "traits": {"pageViews": 7, "orders": 1, "ltv": 0},
        "cart": {"items": 2, "value": 80.0},
        "counts": {"page_view": 7},
        "interests": {"outdoor": 4},
        "scores": {"churn": 0.2},
        "userId": "u-9",
        "rfm": {"recency_days": None, "frequency": 1, "monetary": 0},
    }


def test_known_profile_without_traits_or_cart() -> None:
    assert profile_attributes({"_id": "v1", "traits": None}, NOW) == {
        "known": True,
        "traits": {"pageViews": 0, "orders": 0, "ltv": 0},
        "cart": {},
        "rfm": {"recency_days": None, "frequency": 0, "monetary": 0},
    }


@pytest.mark.parametrize(
    ("updated_at", "idle"),
    [
        pytest.param(NOW - timedelta(minutes=45), 45.0, id="aware"),
        pytest.param(NOW - timedelta(seconds=90), 1.5, id="fractional"),
        pytest.param(NOW - timedelta(seconds=100), 1.7, id="rounded-to-tenths"),
        pytest.param(
            (NOW - timedelta(minutes=30)).replace(tzinfo=None), 30.0, id="naive-read-as-utc"
        ),
        pytest.param(NOW + timedelta(minutes=5), 0.0, id="future-clamped-to-zero"),
        pytest.param(NOW, 0.0, id="just-now"),
    ],
)
def test_cart_idle_minutes(updated_at: datetime, idle: float) -> None:
    attributes = profile_attributes({"cart": {"items": 1, "updatedAt": updated_at}}, NOW)
    assert attributes["cart"]["idleMinutes"] == idle


@pytest.mark.parametrize(
    "updated_at",
    [
        pytest.param("2026-06-07T18:00:00Z", id="string"),
        pytest.param(None, id="none"),
        pytest.param(1749319200, id="number"),
    ],
)
def test_no_idle_minutes_without_a_datetime(updated_at: Any) -> None:
    attributes = profile_attributes({"cart": {"items": 1, "updatedAt": updated_at}}, NOW)
    assert "idleMinutes" not in attributes["cart"]


def test_minutes_since_last_seen() -> None:
    profile = {"traits": {"lastSeen": NOW - timedelta(hours=2, seconds=6)}}
    assert profile_attributes(profile, NOW)["traits"]["minutesSinceLastSeen"] == 120.1
    naive = {"traits": {"lastSeen": datetime(2026, 6, 7, 18, 0)}}
    assert profile_attributes(naive, NOW)["traits"]["minutesSinceLastSeen"] == 30.0
    assert "minutesSinceLastSeen" not in profile_attributes({"traits": {}}, NOW)["traits"]


def test_profile_attributes_do_not_mutate_the_profile() -> None:
    profile = {
        "traits": {"lastSeen": NOW - timedelta(minutes=1)},
        "cart": {"updatedAt": NOW - timedelta(minutes=1)},
    }
    profile_attributes(profile, NOW)
    assert set(profile["traits"]) == {"lastSeen"}
    assert set(profile["cart"]) == {"updatedAt"}


# -- build_context -------------------------------------------------------------------


def facts(**overrides: Any) -> RequestFacts:
    values: dict[str, Any] = {
        "visitor_id": "v1",
        "device": "mobile",
        "country": "DE",
        "path": "/outdoor",
        "referrer": "https://search.example/",
        "utm": {"source": "newsletter"},
        "user_agent": "UA/1.0",
    }
    values.update(overrides)
    return RequestFacts(**values)


def test_request_facts_defaults() -> None:
    request = RequestFacts(visitor_id="v1")
    assert (request.device, request.country, request.path, request.referrer) == (
        "desktop",
        None,
        None,
        None,
    )
    assert dict(request.utm) == {}
    assert request.user_agent is None


def test_context_has_request_attributes() -> None:
    ctx = build_context(
        request=facts(), profile=None, audiences=AudienceSet(), now=NOW, locale="de-DE"
    )
    attributes = ctx.attributes
    assert {key: attributes[key] for key in ("id", "device", "country", "locale", "path")} == {
        "id": "v1",
        "device": "mobile",
        "country": "DE",
        "locale": "de-DE",
        "path": "/outdoor",
    }
    assert attributes["referrer"] == "https://search.example/"
    assert attributes["utm"] == {"source": "newsletter"}
    assert attributes["userAgent"] == "UA/1.0"
    assert (attributes["hour"], attributes["dayOfWeek"]) == (18, 7)
    assert (ctx.now, ctx.locale, ctx.profile_available) == (NOW, "de-DE", True)


def test_context_merges_profile_and_resolves_audiences() -> None:
    profile = {
        "traits": {"pageViews": 12, "ltv": 800},
        "cart": {"items": 2, "updatedAt": NOW - timedelta(minutes=40)},
    }
    ctx = build_context(
        request=facts(country="US"),
        profile=profile,
        audiences=DEMO_AUDIENCES,
        now=NOW,
        locale="en-US",
    )
    assert ctx.attributes["known"] is True
    assert ctx.attributes["cart"]["idleMinutes"] == 40.0
    assert ctx.audiences == frozenset({"returning", "high_value", "cart_abandoner", "mobile"})
    assert ctx.attributes["audiences"] == ["cart_abandoner", "high_value", "mobile", "returning"]


def test_unknown_visitor_is_a_new_visitor() -> None:
    ctx = build_context(
        request=facts(device="desktop"),
        profile=None,
        audiences=DEMO_AUDIENCES,
        now=NOW,
        locale="en-US",
    )
    assert ctx.attributes["known"] is False
    assert ctx.audiences == frozenset({"new_visitor", "dach"})


def test_idle_cart_below_threshold_is_not_an_abandoner() -> None:
    profile = {
        "traits": {"pageViews": 1},
        "cart": {"items": 2, "updatedAt": NOW - timedelta(minutes=29)},
    }
    ctx = build_context(
        request=facts(), profile=profile, audiences=DEMO_AUDIENCES, now=NOW, locale=None
    )
    assert "cart_abandoner" not in ctx.audiences


def test_profile_unavailable_reads_no_profile_and_no_audiences() -> None:
    ctx = build_context(
        request=facts(),
        profile={"traits": {"pageViews": 50, "ltv": 1000}},
        audiences=DEMO_AUDIENCES,
        now=NOW,
        locale="en-US",
        profile_available=False,
    )
    assert ctx.profile_available is False
    assert ctx.audiences == frozenset()  # not even the request-only ones (mobile, dach)
    assert ctx.attributes["audiences"] == []
    assert "known" not in ctx.attributes
    assert "traits" not in ctx.attributes
    assert ctx.attributes["device"] == "mobile"


def test_groups_reach_audience_conditions() -> None:
    audiences = audience_set(staff={"id": {"$inGroup": "staff-ids"}})
    groups = {"staff-ids": ["v1", "v2"]}
    ctx = build_context(
        request=facts(), profile=None, audiences=audiences, now=NOW, locale=None, groups=groups
    )
    assert ctx.audiences == frozenset({"staff"})
    assert ctx.groups == groups
    outsider = build_context(
        request=facts(visitor_id="v3"),
        profile=None,
        audiences=audiences,
        now=NOW,
        locale=None,
        groups=groups,
    )
    assert outsider.audiences == frozenset()


def test_utm_is_copied_not_shared() -> None:
    utm = {"source": "ads"}
    ctx = build_context(
        request=facts(utm=utm), profile=None, audiences=AudienceSet(), now=NOW, locale=None
    )
    utm["source"] = "changed"
    assert ctx.attributes["utm"] == {"source": "ads"}


# -- audiences --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "name"),
    [
        pytest.param({"name": "vip", "condition": {}}, "vip", id="name"),
        pytest.param({"_id": "vip", "condition": {}}, "vip", id="mongo-id"),
        pytest.param({"name": "vip", "_id": "other"}, "vip", id="name-beats-id"),
    ],
)
def test_audience_name(document: dict[str, Any], name: str) -> None:
    assert Audience.from_document(document).name == name


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"condition": {}}, id="missing"),
        pytest.param({"name": "", "condition": {}}, id="empty"),
        pytest.param({"name": 7, "condition": {}}, id="not-a-string"),
        pytest.param({"name": None, "_id": "x"}, id="explicit-none"),
    ],
)
def test_audience_needs_a_name(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="name"):
        Audience.from_document(document)


def test_audience_description_and_default_condition() -> None:
    everyone = Audience.from_document({"name": "everyone"})
    assert everyone.description == ""
    assert everyone.condition.matches({"anything": 1})
    described = Audience.from_document({"name": "x", "description": "Some text", "condition": {}})
    assert described.description == "Some text"


def test_audience_with_malformed_condition_never_matches() -> None:
    broken = Audience.from_document({"name": "broken", "condition": {"ltv": {"$gte!": 5}}})
    assert not broken.condition.valid
    assert AudienceSet([broken]).memberships({"ltv": 10}) == frozenset()


def test_audience_set_collection_protocol() -> None:
    audiences = audience_set(a={"x": 1}, b={"x": {"$gt": 0}}, c={"x": 2})
    assert len(audiences) == 3
    assert "b" in audiences
    assert "z" not in audiences
    assert audiences.get("a") is not None
    assert audiences.get("a").name == "a"  # type: ignore[union-attr]
    assert audiences.get("z") is None
    assert sorted(a.name for a in audiences) == ["a", "b", "c"]
    assert audiences.memberships({"x": 1}) == frozenset({"a", "b"})
    assert audiences.memberships({"x": 2}) == frozenset({"b", "c"})
    assert audiences.memberships({}) == frozenset()
    assert AudienceSet().memberships({"x": 1}) == frozenset()


def test_withdrawn_consent_is_told_apart_from_an_unreadable_profile() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    withdrawn = build_context(
        request=RequestFacts(visitor_id="v"),
        profile={"consent": {"personalization": False}},
        audiences=AudienceSet(()),
        now=now,
        locale=None,
    )
    unreadable = build_context(
        request=RequestFacts(visitor_id="v"),
        profile=None,
        audiences=AudienceSet(()),
        now=now,
        locale=None,
        profile_available=False,
    )
    assert (withdrawn.profile_available, withdrawn.personalization_consent) == (False, False)
    assert (unreadable.profile_available, unreadable.personalization_consent) == (False, True)
