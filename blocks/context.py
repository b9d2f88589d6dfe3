"""The targeting context: what conditions and audiences are evaluated against.

Built by one pure function from the visitor's profile document (or its
absence), the request's own facts and the audience definitions, so the whole
decision can be reproduced from plain values in a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from blocks.audiences import AudienceSet


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the request itself says about the visitor, independent of any profile."""

    visitor_id: str
    device: str = "desktop"
    country: str | None = None
    path: str | None = None
    referrer: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class TargetingContext:
    """Everything a decision may read, plus whether the profile could be read."""

    attributes: Mapping[str, Any]
    audiences: frozenset[str]
    now: datetime
    locale: str | None
    profile_available: bool = True
    groups: Mapping[str, Sequence[Any]] | None = None
    #: False when the profile was read but its owner withdrew personalization consent.
    personalization_consent: bool = True
    #: The profile's experiment assignments: GrowthBook sticky bucket documents by
    #: `attributeName||attributeValue`.
    sticky_buckets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _minutes_since(moment: Any, now: datetime) -> float | None:
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elapsed: float = (now - moment).total_seconds()
    return max(0.0, elapsed / 60.0)


DEFAULT_HALF_LIFE_DAYS = 30.0


def _decayed(value: Any, now: datetime, half_life_days: float) -> float | None:
    """A stored score (`{v, t}`, or a plain number as seeded) decayed to `now`."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, Mapping) or not isinstance(value.get("v"), (int, float)):
        return None
    days = (_minutes_since(value.get("t"), now) or 0.0) / 1440.0
    return round(float(value["v"] * 0.5 ** (days / half_life_days)), 4)


def _scores(raw: Any, now: datetime, half_life_days: float) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        score = _decayed(value, now, half_life_days)
        if score is not None:
            out[str(key)] = score
    return out


def _rfm(traits: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    since = _minutes_since(traits.get("lastOrderAt"), now)
    return {
        "recency_days": None if since is None else round(since / 1440.0, 2),
        "frequency": traits.get("orders", 0),
        "monetary": traits.get("ltv", 0),
    }


def personalization_allowed(profile: Mapping[str, Any] | None) -> bool:
    """False when the visitor withdrew personalization consent."""
    consent = (profile or {}).get("consent")
    return not (isinstance(consent, Mapping) and consent.get("personalization") is False)


def _assignments_only(profile: Mapping[str, Any]) -> bool:
    """A profile created to hold experiment assignments, before any event of its visitor."""
    return (
        "stickyBuckets" in profile
        and not profile.get("counts")
        and not profile.get("traits")
        and "userId" not in profile
    )


def sticky_buckets(profile: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The profile's sticky bucket documents, keyed as GrowthBook keys them (`attr||value`)."""
    raw = (profile or {}).get("stickyBuckets")
    out: dict[str, Mapping[str, Any]] = {}
    if not isinstance(raw, Mapping):
        return out
    for doc in raw.values():
        if not isinstance(doc, Mapping):
            continue
        name, value = doc.get("attributeName"), doc.get("attributeValue")
        if (
            isinstance(name, str)
            and isinstance(value, str)
            and isinstance(doc.get("assignments"), Mapping)
        ):
            out[f"{name}||{value}"] = doc
    return out


def profile_attributes(profile: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The profile's targetable attributes, with values derived at read time."""
    if profile is None or _assignments_only(profile):
        return {"known": False, "traits": {"pageViews": 0, "orders": 0, "ltv": 0}, "cart": {}}
    # Counters a profile has not reached yet read as zero, as for a new visitor.
    traits = {"pageViews": 0, "orders": 0, "ltv": 0, **(profile.get("traits") or {})}
    cart = dict(profile.get("cart") or {})
    idle = _minutes_since(cart.get("updatedAt"), now)
    if idle is not None:
        cart["idleMinutes"] = round(idle, 1)
    since = _minutes_since(traits.get("lastSeen"), now)
    if since is not None:
        traits["minutesSinceLastSeen"] = round(since, 1)
    if not cart.get("lines"):
        cart.pop("lines", None)
    attributes: dict[str, Any] = {"known": True, "traits": traits, "cart": cart}
    for key in ("counts", "scores", "userId"):
        if key in profile:
            attributes[key] = profile[key]
    segment = profile.get("segment")
    if isinstance(segment, Mapping):
        # The learned segment (scoring.segments): `segment.label` in conditions and audiences.
        attributes["segment"] = {k: segment[k] for k in ("id", "label") if k in segment}
    decay = profile.get("decay")
    half_life = DEFAULT_HALF_LIFE_DAYS
    if isinstance(decay, Mapping) and isinstance(decay.get("halfLifeDays"), (int, float)):
        half_life = float(decay["halfLifeDays"]) or DEFAULT_HALF_LIFE_DAYS
    for key in ("interests", "tags"):
        if key in profile:
            attributes[key] = _scores(profile[key], now, half_life)
    attributes["rfm"] = _rfm(traits, now)
    if profile.get("purchased"):
        attributes["purchased"] = [
            item["productId"]
            for item in profile["purchased"]
            if isinstance(item, Mapping) and isinstance(item.get("productId"), str)
        ]
    if "recentlyViewed" in profile:
        attributes["recentlyViewed"] = [
            {k: v for k, v in item.items() if k in ("productId", "category")}
            for item in profile.get("recentlyViewed") or ()
            if isinstance(item, Mapping)
        ]
    return attributes


def build_context(
    *,
    request: RequestFacts,
    profile: Mapping[str, Any] | None,
    audiences: AudienceSet,
    now: datetime,
    locale: str | None,
    profile_available: bool = True,
    groups: Mapping[str, Sequence[Any]] | None = None,
) -> TargetingContext:
    """Assemble the targeting context and resolve the visitor's audiences."""
    attributes: dict[str, Any] = {
        "id": request.visitor_id,
        "device": request.device,
        "country": request.country,
        "locale": locale,
        "path": request.path,
        "referrer": request.referrer,
        "utm": dict(request.utm),
        "userAgent": request.user_agent,
        "hour": now.hour,
        "dayOfWeek": now.isoweekday(),
    }
    # Without personalization consent the page renders as if no profile could be read.
    consent = personalization_allowed(profile)
    profile_available = profile_available and consent
    if profile_available:
        attributes.update(profile_attributes(profile, now))
    members = audiences.memberships(attributes, groups) if profile_available else frozenset()
    attributes["audiences"] = sorted(members)
    return TargetingContext(
        attributes=attributes,
        audiences=members,
        now=now,
        locale=locale,
        profile_available=profile_available,
        groups=groups,
        personalization_consent=consent,
        sticky_buckets=sticky_buckets(profile) if profile_available else {},
    )
