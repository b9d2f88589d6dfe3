"""Background services: started and stopped by `async with`, one vocabulary for all.

    async with AsyncExitStack() as stack:
        catalog = await stack.enter_async_context(AudienceCatalog(repository))
        ...

`start()` begins the service's background work (and may do a first round of
it, so the service is ready when `async with` enters); `aclose()` stops it,
bounded in time, and is safe to call twice.

Services that flush a queue when they close take a `close_timeout`: a number
of seconds, or a `ShutdownBudget`'s `remaining`, so that services closed one
after another share one bound instead of adding theirs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

#: Seconds, or a function giving them when asked (a `ShutdownBudget.remaining`).
Timeout = float | Callable[[], float]


def seconds(timeout: Timeout) -> float:
    """The seconds a `Timeout` allows now."""
    return timeout() if callable(timeout) else timeout


class ShutdownBudget:
    """One time budget for stopping, shared by the services closed one after another."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends: float | None = None

    def start(self) -> None:
        """Start spending the budget (once: later calls change nothing)."""
        if self._ends is None:
            self._ends = self._clock() + self.seconds

    def remaining(self) -> float:
        """Seconds left (the budget starts at the first call if `start` was not called)."""
        self.start()
        assert self._ends is not None
        return max(0.0, self._ends - self._clock())


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Service:
    """Base of every background service (see the module docstring)."""

    async def start(self) -> None:
        """Begin the background work (nothing by default)."""

    async def aclose(self) -> None:
        """Stop the background work (nothing by default)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
