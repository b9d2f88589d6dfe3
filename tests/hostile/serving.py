"""The app under a real uvicorn server in the test's event loop, for socket-level tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from gateway.embedded_mongo import free_port


@contextlib.asynccontextmanager
async def uvicorn_serving(app: ASGIApp, *, log_level: str = "critical") -> AsyncIterator[int]:
    """Serve `app` on a free port (yielded) until the block ends.

    Shutdown is bounded: a regression that keeps a request open fails its test
    instead of hanging it.
    """
    port = free_port()
    config = uvicorn.Config(
        app, port=port, log_level=log_level, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
