"""The bucket stores: one contract for memory and Redis; the in-memory bound; the math."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from gateway.ratelimit import Bucket, BucketStore, Limit, MemoryBuckets, RedisBuckets

SLOW = Limit(rate=0.01, burst=3)  # one token per 100 s


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(cache_url: str) -> AsyncIterator[BucketStore]:
    if cache_url == "memory://":
        yield MemoryBuckets()
        return
    shared = RedisBuckets(cache_url)
    yield shared
    await shared.aclose()


def ip(name: str, limit: Limit = SLOW) -> Bucket:
    return Bucket(f"test:ip:{name}", "ip", limit)


async def test_a_burst_then_a_refusal_with_the_wait(store: BucketStore) -> None:
    verdicts = [await store.acquire([ip("a")]) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    # Full again 100 s after each token taken; the next token in 100 s.
    assert [round(v.reset) for v in verdicts[:3]] == [100, 200, 300]
    refused = verdicts[3]
    assert 99 < refused.retry_after <= 100
    assert 299 < refused.reset <= 300
    assert refused.bucket == ip("a")


async def test_every_bucket_or_none(store: BucketStore) -> None:
    roomy, tight = ip("roomy", Limit(0.01, 10)), ip("tight", Limit(0.01, 1))
    first = await store.acquire([roomy, tight])
    assert (first.allowed, first.bucket, first.remaining) == (True, tight, 0)
    for _ in range(3):
        refused = await store.acquire([roomy, tight])
        assert (refused.allowed, refused.bucket) == (False, tight)
    # The refusals took nothing from the roomy bucket: 9 of its 10 tokens are left.
    alone = await store.acquire([roomy])
    assert (alone.allowed, alone.remaining) == (True, 8)


async def test_the_longest_wait_decides(store: BucketStore) -> None:
    short, long = ip("short", Limit(1, 1)), ip("long", Limit(0.01, 1))
    await store.acquire([short, long])
    refused = await store.acquire([short, long])
    assert (refused.allowed, refused.bucket) == (False, long)
    assert refused.retry_after > 99


async def test_concurrent_checks_never_overspend(store: BucketStore) -> None:
    verdicts = await asyncio.gather(*(store.acquire([ip("race")]) for _ in range(50)))
    assert sum(v.allowed for v in verdicts) == 3


async def test_huge_rates_are_effectively_unlimited(store: BucketStore) -> None:
    # One token per nanosecond is below the resolution of the clock's doubles.
    bucket = ip("huge", Limit(rate=1e9, burst=1))
    assert all([(await store.acquire([bucket])).allowed for _ in range(3)])


async def test_redis_keys_expire_when_the_bucket_is_full_again(redis_url: str) -> None:
    store = RedisBuckets(redis_url)
    try:
        await store.acquire([ip("ttl", Limit(rate=10, burst=5))])
    finally:
        await store.aclose()
    with redis.Redis.from_url(redis_url) as client:
        ttl = client.pttl("tessera:ratelimit:test:ip:ttl")
    assert 0 < ttl <= 100  # one token of a 10/s bucket refills in 100 ms


def test_memory_refills_on_its_clock() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock=clock)
    bucket = ip("refill", Limit(rate=2, burst=2))
    assert [store.take([bucket]).allowed for _ in range(3)] == [True, True, False]
    clock.now += 0.5
    assert store.take([bucket]).allowed
    assert not store.take([bucket]).allowed
    clock.now += 10  # long idle: never more than the burst
    assert [store.take([bucket]).allowed for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_and_forgets_full_buckets_first() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock=clock, max_entries=100)
    slow = Limit(rate=0.001, burst=5)
    store.take([ip("busy", slow)])
    for n in range(99):
        store.take([ip(f"idle-{n}", Limit(rate=1000, burst=5))])
    clock.now += 1  # the idle buckets are full again; "busy" is not
    store.take([ip("new", slow)])
    assert len(store) == 2  # "busy" and "new": the full ones were forgotten
    for n in range(500):  # a flood of new addresses that stay busy
        store.take([ip(f"flood-{n}", slow)])
    assert len(store) <= 100
