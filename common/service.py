"""Background services: started and stopped by `async with`, one vocabulary for all.

    async with AsyncExitStack() as stack:
        catalog = await stack.enter_async_context(AudienceCatalog(repository))
        ...

`start()` begins the service's background work (and may do a first round of
it, so the service is ready when `async with` enters); `aclose()` stops it,
bounded in time, and is safe to call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self


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
