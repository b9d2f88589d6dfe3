"""The profile near-cache: bytes-bounded LRU, aliases after merges, updates and deletes."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import bson

from profiles.near_cache import ENTRY_BYTES, NearCache


def profile(pid: str, padding: int = 0, **fields: Any) -> dict[str, Any]:
    return {"_id": pid, "traits": {"pageViews": 1}, "pad": "x" * padding, **fields}


def test_sized_in_bytes_least_recently_used_goes_first() -> None:
    size = ENTRY_BYTES + 1 + len(bson.encode(profile("a", 1000)))
    cache = NearCache(max_bytes=size * 3)
    for pid in "abc":
        cache.put(pid, profile(pid, 1000))
    assert cache.bytes == 3 * size
    assert cache.get("a") is not None  # now the most recent
    cache.put("d", profile("d", 1000))
    assert cache.get("b") is None
    assert {key for key in "acd" if cache.get(key) is not None} == {"a", "c", "d"}
    assert cache.bytes <= cache.max_bytes


def _rich(n: int) -> dict[str, Any]:
    """A profile shaped like a returning shopper's (interests, recently viewed, a cart)."""
    at = datetime(2026, 11, 30, 12, 0, n % 60, 123000, tzinfo=UTC)
    return {
        "_id": f"visitor-{n:06d}",
        "version": n % 7,
        "traits": {"sessions": 3, "device": "phone", "country": "DE", "lastSeen": at},
        "counts": {"page_view": n % 40, "click": 2, "add_to_cart": 1},
        "interests": {f"category-{i}": {"v": 1.5 + i, "t": at} for i in range(6)},
        "recentlyViewed": [{"productId": f"P{n}-{i}", "at": at, "category": "c"} for i in range(8)],
        "cart": {"lines": [{"productId": "TENT-2P", "quantity": 1, "price": 28.3}], "items": 1},
    }


def test_the_budget_counts_what_entries_really_take() -> None:
    """`bytes` is within 25 % of the memory 2,000 cached profiles take (tracemalloc)."""
    profiles = [_rich(n) for n in range(2000)]
    keys = [f"visitor-{n:06d}" for n in range(2000)]
    cache = NearCache(max_bytes=1 << 30)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for key, doc in zip(keys, profiles, strict=True):
            cache.put(key, doc)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    taken = after - before
    assert 0.8 < cache.bytes / taken < 1.25, (cache.bytes, taken)
    # What the same profiles take decoded: several times more (why BSON is kept).
    assert cache.bytes * 3 < sum(_deep_size(doc) for doc in profiles)


def _deep_size(value: Any) -> int:
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k) + _deep_size(v) for k, v in value.items())
    elif isinstance(value, list):
        size += sum(_deep_size(item) for item in value)
    return size


def test_each_read_decodes_a_copy_the_caller_cannot_alter() -> None:
    cache = NearCache()
    original = _rich(1)
    cache.put("visitor-000001", original)
    entry = cache.get("visitor-000001")
    assert entry is not None
    first = entry.profile
    assert first == original  # datetimes come back timezone-aware, milliseconds kept
    assert first is not None
    assert first["traits"]["lastSeen"].tzinfo is not None
    first["counts"]["page_view"] = 10**6
    first["interests"].clear()
    assert entry.profile == original


def test_a_new_visitor_is_cached_as_absent_until_their_profile_is_written() -> None:
    cache = NearCache()
    cache.put("new", None)
    entry = cache.get("new")
    assert entry is not None
    assert entry.profile is None
    assert cache.bytes == ENTRY_BYTES + len("new")
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
