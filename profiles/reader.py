"""Profile reads inside a time budget, with a breaker and once-per-incident logging.

A page must never wait on MongoDB longer than the budget. When reads fail or
time out, the page renders unpersonalized; after a few consecutive failures
the breaker opens and requests stop trying (one probe per interval), so an
outage costs nothing per request. The outage is logged once when it starts
and once when it ends, never per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import PyMongoError

from profiles.read_metrics import record_read
from profiles.store import ProfileStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProfileRead:
    """The outcome of one budgeted read."""

    profile: dict[str, Any] | None
    available: bool


UNAVAILABLE = ProfileRead(profile=None, available=False)


class BudgetedProfileReader:
    """Read profiles within `budget` seconds; degrade instead of failing."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        budget: float = 0.05,
        failures_to_open: int = 3,
        probe_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.budget = budget
        self.failures_to_open = failures_to_open
        self.probe_interval = probe_interval
        self._clock = clock
        self._consecutive_failures = 0
        self._incident_started: float | None = None
        self._next_probe = 0.0
        self.fallbacks = 0
        self.incidents = 0
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
        """False while an incident is open."""
        return self._incident_started is None

    def _breaker_open(self) -> bool:
        return self._consecutive_failures >= self.failures_to_open

    async def read(self, visitor_id: str) -> ProfileRead:
        """The visitor's profile, or `UNAVAILABLE` if it cannot be had in time."""
        began = time.perf_counter()
        if self._breaker_open():
            now = self._clock()
            if now < self._next_probe:
                self.fallbacks += 1
                record_read("fallback", time.perf_counter() - began)
                return UNAVAILABLE
            # This request is the probe; the others keep falling back meanwhile.
            self._next_probe = now + self.probe_interval
        started = time.perf_counter()
        try:
            profile = await asyncio.wait_for(self.store.get(visitor_id), self.budget)
        except (TimeoutError, PyMongoError, OSError) as exc:
            self._observe(self.budget)
            self._last_miss = self._clock()
            self._failed(exc)
            self.fallbacks += 1
            record_read("fallback", time.perf_counter() - began)
            return UNAVAILABLE
        self._observe(time.perf_counter() - started)
        self._succeeded()
        record_read("db", time.perf_counter() - began)
        return ProfileRead(profile=profile, available=True)

    def _failed(self, exc: BaseException) -> None:
        self._consecutive_failures += 1
        if self._breaker_open():
            self._next_probe = self._clock() + self.probe_interval
        if self._incident_started is None:
            self._incident_started = self._clock()
            self._fallbacks_at_incident_start = self.fallbacks
            self.incidents += 1
            reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            logger.error(
                "profile read %s (budget %.0f ms); serving default variants until MongoDB "
                "answers again",
                reason,
                self.budget * 1000,
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
