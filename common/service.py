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
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)

#: Seconds, or a function giving them when asked (a `ShutdownBudget.remaining`).
Timeout = float | Callable[[], float]
#: How long `cancel` waits for a task to stop before leaving it behind.
CANCEL_SECONDS = 5.0
#: How often `cancel` cancels a task again while it still runs.
_RECANCEL_SECONDS = 0.05


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


async def cancel(task: asyncio.Task[Any] | None, patience: float = CANCEL_SECONDS) -> None:
    """Cancel `task` (if any) and wait until it has stopped, at most `patience` seconds.

    The task is cancelled again every 50 ms while it runs: a library may turn a
    cancellation into an error of its own (pymongo does while it waits to select
    a server that hangs), and a loop that outlives errors would then run on for
    good, holding up shutdown. A task still running after `patience` is left
    behind, and logged.
    """
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.error(
                "background task %s did not stop within %g s of being cancelled; left behind",
                task.get_name(),
                patience,
            )
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(_RECANCEL_SECONDS, remaining))
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
