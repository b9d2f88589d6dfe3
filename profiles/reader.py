"""Profile reads inside a time budget: near-cache first, MongoDB within the budget.

A page must never wait on MongoDB longer than the budget, and a busy database
should cost a little personalization, not all of it:

1. **near-cache**: a profile the feed keeps fresh is answered at once;
2. **database**: otherwise one read per visitor at a time (concurrent requests
   for the same visitor share it), at most `max_concurrent` in flight, within
   the budget. A read that misses the budget is *not* abandoned: it completes
   in the background and fills the near-cache, so the visitor's next page is
   personalized;
3. **stale**: when the database misses the budget and the near-cache holds a
   possibly stale entry (the feed is down), that entry is served;
4. **fallback**: otherwise the page renders unpersonalized and says so.

Only errors (MongoDB unreachable) open the breaker: then requests stop trying
(one probe per interval) and an outage costs nothing per request. Slowness
never opens it, so load alone cannot switch personalization off for
everyone. An outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.errors import PyMongoError

from profiles.near_cache import NearCache, ProfileFeed
from profiles.read_metrics import record_read
from profiles.store import ProfileStore

logger = logging.getLogger(__name__)

Source = Literal["near-cache", "db", "stale", "fallback"]


@dataclass(frozen=True, slots=True)
class ProfileRead:
    """The outcome of one budgeted read, and where it came from."""

    profile: dict[str, Any] | None
    available: bool
    source: Source = "db"


UNAVAILABLE = ProfileRead(profile=None, available=False, source="fallback")


class BudgetedProfileReader:
    """Read profiles within `budget` seconds; degrade instead of failing."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        budget: float = 0.05,
        near_cache: NearCache | None = None,
        feed: ProfileFeed | None = None,
        max_concurrent: int = 32,
        failures_to_open: int = 3,
        probe_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.budget = budget
        self.near_cache = near_cache
        self.feed = feed
        self.failures_to_open = failures_to_open
        self.probe_interval = probe_interval
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._inflight: dict[str, asyncio.Task[dict[str, Any] | None]] = {}
        self._consecutive_failures = 0
        self._incident_started: float | None = None
        self._next_probe = 0.0
        self.fallbacks = 0
        self.incidents = 0
        self.outcomes: dict[Source, int] = {"near-cache": 0, "db": 0, "stale": 0, "fallback": 0}
        self._fallbacks_at_incident_start = 0
        #: Moving average of recent read times in seconds (a timeout counts as the budget).
        self.latency = 0.0
        self._last_miss = -float("inf")

    def under_pressure(self, window: float = 1.0) -> bool:
        """Whether MongoDB is too busy for reads: one missed its budget lately, or they slow."""
        recent_miss = self._clock() - self._last_miss < window
        return recent_miss or self.latency > self.budget * 0.5

    def _observe(self, seconds: float) -> None:
        # An exponential moving average over roughly the last 20 reads.
        self.latency += (min(seconds, self.budget) - self.latency) * 0.1

    @property
    def healthy(self) -> bool:
        """False while an incident (MongoDB failing, not merely slow) is open."""
        return self._incident_started is None

    def _breaker_open(self) -> bool:
        return self._consecutive_failures >= self.failures_to_open

    def _fresh(self) -> bool:
        return self.feed is not None and self.feed.healthy

    async def read(self, visitor_id: str) -> ProfileRead:
        """The visitor's profile from the freshest source that answers in time."""
        began = time.perf_counter()
        cached = self.near_cache.get(visitor_id) if self.near_cache is not None else None
        if cached is not None and self._fresh():
            return self._count(ProfileRead(cached.profile, True, "near-cache"), began)
        if self._breaker_open():
            now = self._clock()
            if now < self._next_probe:
                return self._fallback(cached, began)
            # This request is the probe; the others keep falling back meanwhile.
            self._next_probe = now + self.probe_interval
        task = self._inflight.get(visitor_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(visitor_id))
            self._inflight[visitor_id] = task
            task.add_done_callback(self._done)
        started = time.perf_counter()
        try:
            # Shielded: a read past the budget still lands in the near-cache.
            profile = await asyncio.wait_for(asyncio.shield(task), self.budget)
        except TimeoutError:
            self._observe(self.budget)
            self._last_miss = self._clock()
            return self._fallback(cached, began)
        except (PyMongoError, OSError):
            # Counted towards the breaker by `_done`, like a failure that comes late.
            self._observe(self.budget)
            self._last_miss = self._clock()
            return self._fallback(cached, began)
        self._observe(time.perf_counter() - started)
        return self._count(ProfileRead(profile, True, "db"), began)

    def _done(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        for visitor_id, inflight in list(self._inflight.items()):
            if inflight is task:
                del self._inflight[visitor_id]
        if task.cancelled():
            return
        # Every read counts, including those that finish after their request gave up:
        # an unreachable database fails late (server selection), past the budget.
        exc = task.exception()
        if exc is None:
            self._succeeded()
        elif isinstance(exc, (PyMongoError, OSError)):
            self._failed(exc)

    async def _fetch(self, visitor_id: str) -> dict[str, Any] | None:
        async with self._slots:
            profile = await self.store.get(visitor_id)
        if self.near_cache is not None:
            self.near_cache.put(visitor_id, profile)
        return profile

    def _fallback(self, cached: Any, began: float) -> ProfileRead:
        if cached is not None:
            return self._count(ProfileRead(cached.profile, True, "stale"), began)
        self.fallbacks += 1
        return self._count(UNAVAILABLE, began)

    def _count(self, read: ProfileRead, began: float) -> ProfileRead:
        self.outcomes[read.source] += 1
        record_read(read.source, time.perf_counter() - began)
        return read

    def _failed(self, exc: BaseException) -> None:
        self._consecutive_failures += 1
        if self._breaker_open():
            self._next_probe = self._clock() + self.probe_interval
        if self._incident_started is None:
            self._incident_started = self._clock()
            self._fallbacks_at_incident_start = self.fallbacks
            self.incidents += 1
            logger.error(
                "profile read failed: %s; serving default variants until MongoDB answers again",
                exc,
            )

    def _succeeded(self) -> None:
        self._consecutive_failures = 0
        if self._incident_started is not None:
            lasted = self._clock() - self._incident_started
            self._incident_started = None
            logger.warning(
                "profile reads recovered after %.1f s; %d requests were served unpersonalized",
                lasted,
                self.fallbacks - self._fallbacks_at_incident_start,
            )
