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


def _minutes_since(moment: Any, now: datetime) -> float | None:
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elapsed: float = (now - moment).total_seconds()
    return max(0.0, elapsed / 60.0)


def profile_attributes(profile: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The profile's targetable attributes, with values derived at read time."""
    if profile is None:
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
    attributes: dict[str, Any] = {"known": True, "traits": traits, "cart": cart}
    for key in ("counts", "interests", "scores", "userId"):
        if key in profile:
            attributes[key] = profile[key]
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
    )
