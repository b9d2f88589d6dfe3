"""Pages with experiments, built through the real parser, for the selection tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.model import Page
from blocks.parse import parse_page

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def hero(experiment: Mapping[str, Any] | None = None, *, extra: list[Any] | None = None) -> Any:
    """A hero block: control `default`, treatment `bold`, a VIP variant and `extra` variants."""
    control: dict[str, Any] = {"id": "default", "default": True, "fields": {"heading": "Sale"}}
    if experiment is not None:
        control["experiment"] = dict(experiment)
    return {
        "id": "hero",
        "type": "hero",
        "variants": [
            control,
            {"id": "bold", "fields": {"heading": "LAST DAYS"}},
            {
                "id": "vip",
                "audiences": ["high_value"],
                "priority": 20,
                "fields": {"heading": "VIP"},
            },
            *(extra or []),
        ],
    }


def cta(experiment: Mapping[str, Any] | None = None) -> Any:
    """A call to action: control `plain`, treatments `short` and `loud`."""
    control: dict[str, Any] = {
        "id": "plain",
        "default": True,
        "fields": {"heading": "Alerts", "button": {"label": "Get alerts", "url": "/a"}},
    }
    if experiment is not None:
        control["experiment"] = dict(experiment)
    return {
        "id": "cta",
        "type": "call_to_action",
        "variants": [
            control,
            {"id": "short", "fields": {"heading": "Go", "button": {"label": "Go", "url": "/a"}}},
            {"id": "loud", "fields": {"heading": "GO!", "button": {"label": "GO", "url": "/a"}}},
        ],
    }


def page(*blocks: Any) -> Page:
    """Parse a page of `blocks`; fails if the parser reports any problem."""
    parsed = parse_page({"slug": "p", "title": "P", "blocks": list(blocks)})
    assert parsed.problems == (), parsed.problems
    return parsed.page


def context(
    visitor: str,
    *,
    profile: Mapping[str, Any] | None = None,
    audiences: frozenset[str] = frozenset(),
    now: datetime = NOW,
    available: bool = True,
    locale: str = "en-US",
) -> TargetingContext:
    """A targeting context for `visitor` with the given profile and audience memberships."""
    built = build_context(
        request=RequestFacts(visitor_id=visitor),
        profile=dict(profile) if profile is not None else {"_id": visitor, "traits": {}},
        audiences=AudienceSet(),
        now=now,
        locale=locale,
        profile_available=available,
    )
    if not audiences:
        return built
    attributes = {**built.attributes, "audiences": sorted(audiences)}
    return TargetingContext(
        attributes=attributes,
        audiences=audiences,
        now=built.now,
        locale=built.locale,
        profile_available=built.profile_available,
        sticky_buckets=built.sticky_buckets,
    )
