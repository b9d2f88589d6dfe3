"""The profile near-cache: bytes-bounded LRU, aliases after merges, updates and deletes."""

from __future__ import annotations

from typing import Any

import bson

from profiles.near_cache import ABSENT_BYTES, NearCache, footprint


def profile(pid: str, padding: int = 0, **fields: Any) -> dict[str, Any]:
    return {"_id": pid, "traits": {"pageViews": 1}, "pad": "x" * padding, **fields}


def test_sized_in_bytes_least_recently_used_goes_first() -> None:
    one = profile("a", 1000)
    size = footprint(one)
    cache = NearCache(max_bytes=size * 3)
    for pid in "abc":
        cache.put(pid, profile(pid, 1000))
    assert cache.get("a") is not None  # now the most recent
    cache.put("d", profile("d", 1000))
    assert cache.get("b") is None
    assert {key for key in "acd" if cache.get(key) is not None} == {"a", "c", "d"}
    assert cache.bytes <= cache.max_bytes


def test_a_profile_counts_the_memory_it_takes_not_its_bson() -> None:
    interests = {f"category-{i}": {"v": 1.5, "t": i} for i in range(100)}
    rich = profile("rich", interests=interests, recentlyViewed=[{"productId": "p"}] * 20)
    cache = NearCache()
    cache.put("rich", rich)
    # Decoded dictionaries take several times the document's BSON size: the budget is memory.
    assert cache.bytes == footprint(rich) > 3 * len(bson.encode(rich))
    nested = footprint({"a": {"b": {"c": "x" * 1000}}})
    assert nested > 1000 + 3 * footprint({})


def test_a_new_visitor_is_cached_as_absent_until_their_profile_is_written() -> None:
    cache = NearCache()
    cache.put("new", None)
    entry = cache.get("new")
    assert entry is not None
    assert entry.profile is None
    assert cache.bytes == ABSENT_BYTES
    cache.update(profile("new"))
    updated = cache.get("new")
    assert updated is not None
    assert updated.profile == profile("new")


def test_updates_reach_every_alias_and_merges_and_deletes_drop_them() -> None:
    cache = NearCache()
    known = profile("user-profile")
    cache.put("anon-1", known)  # anon-1 was merged into user-profile: reads resolve there
    cache.put("user-profile", known)
    cache.put("bystander", profile("bystander"))
    changed = profile("user-profile", orders=2)
    cache.update(changed)
    assert cache.get("anon-1").profile == changed  # type: ignore[union-attr]
    assert cache.get("user-profile").profile == changed  # type: ignore[union-attr]
    cache.update(profile("bystander", mergedInto="user-profile"))
    assert cache.get("bystander") is None  # the next read follows the merge
    cache.remove("user-profile")
    assert cache.get("anon-1") is None
    assert cache.get("user-profile") is None
    assert len(cache) == 0
    assert cache.bytes == 0


def test_updates_for_visitors_not_cached_are_ignored() -> None:
    cache = NearCache()
    cache.update(profile("someone-else"))
    assert len(cache) == 0


def test_a_zero_budget_caches_nothing() -> None:
    cache = NearCache(max_bytes=0)
    cache.put("a", profile("a"))
    assert cache.get("a") is None
