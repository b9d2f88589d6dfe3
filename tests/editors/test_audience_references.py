"""Audiences that reference audiences: membership, cycles and their detection."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.audiences import Audience, AudienceSet, find_cycle


def _set(*documents: dict[str, Any]) -> AudienceSet:
    return AudienceSet(Audience.from_document(d) for d in documents)


BASE = (
    {"name": "big_cart", "condition": {"cart.value": {"$gte": 100}}},
    {"name": "mobile", "condition": {"device": "mobile"}},
)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"cart": {"value": 150}, "device": "desktop"}, {"big_cart", "either"}),
        ({"cart": {"value": 150}, "device": "mobile"}, {"big_cart", "mobile", "either", "both"}),
        (
            {"cart": {"value": 150}, "device": "mobile", "country": "DE"},
            {"big_cart", "mobile", "either", "both", "both_in_de"},
        ),
        ({"cart": {"value": 5}, "device": "tablet"}, set()),
    ],
)
def test_membership_follows_references(attributes: dict[str, Any], expected: set[str]) -> None:
    audiences = _set(
        *BASE,
        {"name": "either", "audiences": ["big_cart", "mobile"]},
        {"name": "both", "audiences": ["big_cart", "mobile"], "audienceMatch": "all"},
        {"name": "both_in_de", "audiences": ["both"], "condition": {"country": "DE"}},
    )
    assert audiences.memberships(attributes) == expected


def test_cycles_and_unknown_references_never_match() -> None:
    audiences = _set(
        *BASE,
        {"name": "a", "audiences": ["b"]},
        {"name": "b", "audiences": ["a", "mobile"]},
        {"name": "ghost", "audiences": ["nobody"]},
        {"name": "uses_cycle", "audiences": ["a", "mobile"]},
    )
    # Audiences on a cycle never match, whatever the order of evaluation.
    assert audiences.memberships({"device": "mobile"}) == {"mobile", "uses_cycle"}
    assert "ghost" not in audiences.memberships({"device": "mobile"})


@pytest.mark.parametrize(
    ("references", "cycle"),
    [
        ({"a": ["b"], "b": ["c"], "c": []}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"x": ["y"], "y": ["z"], "z": ["y"]}, ["y", "z", "y"]),
        ({"a": ["missing"]}, None),
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, None),
    ],
)
def test_find_cycle_names_the_cycle(
    references: dict[str, list[str]], cycle: list[str] | None
) -> None:
    assert find_cycle(references) == cycle


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x", "audiences": "mobile"}, "'audiences' must be a list of audience names"),
        ({"name": "x", "audienceMatch": "most"}, "'audienceMatch' must be 'any' or 'all'"),
    ],
)
def test_bad_reference_fields_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Audience.from_document(document)
