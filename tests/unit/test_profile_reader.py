"""Budgeted profile reads: time budget, breaker, probing, recovery and incident logging."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from profiles.near_cache import NearCache
from profiles.reader import UNAVAILABLE, BudgetedProfileReader, ProfileRead

LOGGER = "profiles.reader"


class FakeStore:
    """Stands in for ProfileStore: can be made slow or failing."""

    def __init__(self) -> None:
        self.profiles: dict[str, dict[str, Any]] = {"v1": {"_id": "v1", "traits": {"pageViews": 4}}}
        self.calls = 0
        self.delay = 0.0
        self.error: BaseException | None = None

    async def get(self, visitor_id: str) -> dict[str, Any] | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.profiles.get(visitor_id)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HealthyFeed:
    """What the reader asks of the change-stream feed: whether it is following."""

    healthy = True


def down() -> ServerSelectionTimeoutError:
    return ServerSelectionTimeoutError("localhost:27017: connection refused")


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def reader_for(store: FakeStore, clock: FakeClock, **options: Any) -> BudgetedProfileReader:
    options = {"budget": 0.05, "failures_to_open": 3, "probe_interval": 10.0, **options}
    return BudgetedProfileReader(store, clock=clock, **options)  # type: ignore[arg-type]


async def test_read_within_budget(store: FakeStore, clock: FakeClock) -> None:
    reader = reader_for(store, clock)
    result = await reader.read("v1")
    assert result == ProfileRead(profile=store.profiles["v1"], available=True, source="db")
    assert reader.healthy
    assert (reader.fallbacks, reader.incidents) == (0, 0)


async def test_unknown_visitor_is_available_without_profile(
    store: FakeStore, clock: FakeClock
) -> None:
    result = await reader_for(store, clock).read("never-seen")
    assert result == ProfileRead(profile=None, available=True, source="db")
    assert result != UNAVAILABLE


async def test_slow_store_is_not_waited_for_past_the_budget(
    store: FakeStore, clock: FakeClock
) -> None:
    store.delay = 0.5
    cache = NearCache()
    reader = reader_for(store, clock, budget=0.05, near_cache=cache)
    started = time.perf_counter()
    result = await reader.read("v1")
    elapsed = time.perf_counter() - started
    assert result is UNAVAILABLE
    assert result.available is False
    assert elapsed < 0.4
    assert reader.fallbacks == 1
    # Slowness is not an outage: no incident, and the read goes on into the near-cache.
    assert reader.healthy
    await asyncio.sleep(0.6)
    entry = cache.get("v1")
    assert entry is not None
    assert entry.profile == store.profiles["v1"]


async def test_slightly_slow_store_within_budget_is_fine(
    store: FakeStore, clock: FakeClock
) -> None:
    store.delay = 0.01
    result = await reader_for(store, clock, budget=2.0).read("v1")
    assert result.available


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(down(), id="server-selection-timeout"),
        pytest.param(AutoReconnect("primary stepped down"), id="auto-reconnect"),
        pytest.param(ConnectionResetError("reset"), id="os-error"),
    ],
)
async def test_store_errors_degrade(store: FakeStore, clock: FakeClock, error: Exception) -> None:
    store.error = error
    reader = reader_for(store, clock)
    assert await reader.read("v1") is UNAVAILABLE
    assert reader.fallbacks == 1
    assert reader.incidents == 1


async def test_failures_below_threshold_keep_calling_the_store(
    store: FakeStore, clock: FakeClock
) -> None:
    store.error = down()
    reader = reader_for(store, clock, failures_to_open=3)
    await reader.read("v1")
    await reader.read("v1")
    assert store.calls == 2
    await reader.read("v1")  # the third failure opens the breaker
    assert store.calls == 3
    await reader.read("v1")
    assert store.calls == 3


async def test_a_success_resets_the_failure_count(store: FakeStore, clock: FakeClock) -> None:
    reader = reader_for(store, clock, failures_to_open=3)
    for error in (down(), down(), None, down(), down()):
        store.error = error
        await reader.read("v1")
    assert store.calls == 5
    await reader.read("v1")  # two consecutive failures only: still closed
    assert store.calls == 6


async def test_open_breaker_skips_the_store_until_the_probe_interval(
    store: FakeStore, clock: FakeClock
) -> None:
    store.error = down()
    reader = reader_for(store, clock, failures_to_open=3, probe_interval=10.0)
    for _ in range(3):
        await reader.read("v1")
    assert store.calls == 3

    for _ in range(50):
        assert await reader.read("v1") is UNAVAILABLE
    clock.now += 9.99
    assert await reader.read("v1") is UNAVAILABLE
    assert store.calls == 3
    assert reader.fallbacks == 54

    clock.now += 0.01  # exactly one interval after the failure that opened it
    assert await reader.read("v1") is UNAVAILABLE  # the probe, still failing
    assert store.calls == 4
    assert await reader.read("v1") is UNAVAILABLE  # no second probe right away
    assert store.calls == 4

    clock.now += 10.0
    await reader.read("v1")
    assert store.calls == 5


async def test_probe_success_closes_the_breaker(store: FakeStore, clock: FakeClock) -> None:
    store.error = down()
    reader = reader_for(store, clock, failures_to_open=2, probe_interval=5.0)
    for _ in range(4):
        await reader.read("v1")
    assert store.calls == 2
    assert not reader.healthy

    store.error = None
    clock.now += 5.0
    result = await reader.read("v1")
    assert result.available
    assert result.profile == store.profiles["v1"]
    assert reader.healthy
    for _ in range(3):  # closed again: every read goes to the store
        assert (await reader.read("v1")).available
    assert store.calls == 6


async def test_only_one_probe_while_it_is_in_flight(store: FakeStore, clock: FakeClock) -> None:
    store.error = down()
    reader = reader_for(store, clock, failures_to_open=1, probe_interval=5.0, budget=2.0)
    await reader.read("v1")
    store.error = None
    store.delay = 0.05
    clock.now += 5.0
    results = await asyncio.gather(*(reader.read("v1") for _ in range(10)))
    assert store.calls == 2
    assert sum(result.available for result in results) == 1


async def test_slow_reads_never_open_the_breaker(store: FakeStore, clock: FakeClock) -> None:
    store.delay = 0.3
    reader = reader_for(store, clock, failures_to_open=2, budget=0.02)
    for n in range(10):
        assert (await reader.read(f"v{n}")).available is False
    assert reader.healthy
    assert store.calls == 10  # every visitor's read was tried (and completes later)
    await asyncio.sleep(0.4)


async def test_concurrent_reads_of_one_visitor_share_one_query(
    store: FakeStore, clock: FakeClock
) -> None:
    store.delay = 0.02
    reader = reader_for(store, clock, budget=1.0)
    results = await asyncio.gather(*(reader.read("v1") for _ in range(20)))
    assert store.calls == 1
    assert all(result.profile == store.profiles["v1"] for result in results)


async def test_a_fresh_near_cache_answers_without_the_store(
    store: FakeStore, clock: FakeClock
) -> None:
    cache = NearCache()
    feed = HealthyFeed()
    reader = reader_for(store, clock, near_cache=cache, feed=feed)
    first = await reader.read("v1")
    second = await reader.read("v1")
    assert (first.source, second.source) == ("db", "near-cache")
    assert second.profile == first.profile
    assert store.calls == 1
    # Without a healthy feed an entry may be stale: the store first, the entry if it is slow.
    feed.healthy = False
    store.delay = 0.5
    stale = await reader_for(store, clock, near_cache=cache, feed=feed, budget=0.02).read("v1")
    assert stale.source == "stale"
    assert stale.available
    assert stale.profile == first.profile
    await asyncio.sleep(0.6)


# -- logging -----------------------------------------------------------------------------------


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_an_incident_logs_one_error_and_one_recovery_warning(
    store: FakeStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    store.error = down()
    reader = reader_for(store, clock, failures_to_open=3, probe_interval=1.0)
    for _ in range(25):
        await reader.read("v1")
        clock.now += 0.3  # several probes fail along the way
    assert store.calls > 3
    assert len(records(caplog, logging.ERROR)) == 1
    assert records(caplog, logging.WARNING) == []
    assert "localhost:27017" in records(caplog, logging.ERROR)[0].getMessage()

    store.error = None
    clock.now += 1.0
    for _ in range(5):
        assert (await reader.read("v1")).available
    assert len(records(caplog, logging.ERROR)) == 1
    assert len(records(caplog, logging.WARNING)) == 1
    assert "recovered" in records(caplog, logging.WARNING)[0].getMessage()
    assert reader.incidents == 1


async def test_timeouts_are_not_incidents(
    store: FakeStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    store.delay = 0.2
    reader = reader_for(store, clock, budget=0.02)
    for _ in range(3):
        await reader.read("v1")
    assert records(caplog, logging.ERROR) == []
    assert reader.incidents == 0
    await asyncio.sleep(0.3)


async def test_each_incident_is_logged_once(
    store: FakeStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader = reader_for(store, clock, failures_to_open=2, probe_interval=1.0)
    for _incident in range(2):
        store.error = down()
        for _ in range(5):
            await reader.read("v1")
        store.error = None
        clock.now += 1.0
        assert (await reader.read("v1")).available
    assert reader.incidents == 2
    assert len(records(caplog, logging.ERROR)) == 2
    assert len(records(caplog, logging.WARNING)) == 2


async def test_healthy_reads_log_nothing(
    store: FakeStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader = reader_for(store, clock)
    for _ in range(5):
        await reader.read("v1")
    assert [r for r in caplog.records if r.name == LOGGER] == []


async def test_slow_reads_raise_the_pressure_signal_and_fast_ones_lower_it() -> None:
    class Store:
        delay = 0.04

        async def get(self, visitor_id: str) -> dict[str, str]:
            await asyncio.sleep(self.delay)
            return {"_id": visitor_id}

    store = Store()
    reader = BudgetedProfileReader(store, budget=0.05)  # type: ignore[arg-type]
    assert not reader.under_pressure()
    for _ in range(30):
        await reader.read("v")
    assert reader.under_pressure()
    store.delay = 0.0
    for _ in range(40):
        await reader.read("v")
    assert not reader.under_pressure()


async def test_a_missed_budget_signals_pressure_for_a_while() -> None:
    class Store:
        slow = True

        async def get(self, visitor_id: str) -> dict[str, str]:
            await asyncio.sleep(0.2 if self.slow else 0)
            return {"_id": visitor_id}

    now = [100.0]
    store = Store()
    reader = BudgetedProfileReader(store, budget=0.01, clock=lambda: now[0])  # type: ignore[arg-type]
    await reader.read("v")
    store.slow = False
    await asyncio.sleep(0.25)  # the slow read completes (in the background)
    await reader.read("v")
    assert reader.under_pressure()
    now[0] += 1.5
    for _ in range(30):
        await reader.read("v")
    assert not reader.under_pressure()
