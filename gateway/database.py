"""Open MongoDB: the one way the app and every CLI connect.

`MONGODB_URI` when it is set; otherwise the embedded SecantusDB server: the
one a running `serve` advertises under `STATE_DIR`, else a server of the
caller's own for as long as it needs it. (The app's own embedded server is
started and supervised by `serve`, or by the lifespan, which then passes its
URI here.) The driver is `pymongo`'s async API with timezone-aware datetimes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo_metrics import Liveness, command_listeners
from gateway.embedded_mongo import database_uri
from gateway.settings import Settings

logger = logging.getLogger(__name__)

Database = AsyncDatabase[dict[str, Any]]

#: How long a command waits for a server: long enough for a restart, short enough to
#: answer a request (reads have their own, shorter, budgets).
SERVER_SELECTION_MS = 2000
#: How long closing the client may take: it ends the server sessions, which a server that
#: hangs never answers (9 s with a paused SecantusDB), and stopping must stay bounded.
CLOSE_SECONDS = 2.0


@asynccontextmanager
async def open_database(
    settings: Settings, *, app: bool = False, liveness: Liveness | None = None
) -> AsyncIterator[Database]:
    """The configured database (its client is `database.client`), closed on exit.

    `liveness` learns when the database last answered (the app's event ingestion
    tells a slow database from a stalled one by it).
    """
    async with database_uri(settings) as uri:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            appname="tessera" if app else "tessera-cli",
            serverSelectionTimeoutMS=SERVER_SELECTION_MS,
            # Command latency on /metrics (and spans when tracing): the app's only.
            event_listeners=command_listeners(liveness) if app else [],
        )
        try:
            yield client[settings.mongodb_database]
        finally:
            try:
                await asyncio.wait_for(client.close(), CLOSE_SECONDS)
            except TimeoutError:
                logger.warning(
                    "the MongoDB client did not close in %g s (the server does not answer); "
                    "leaving it",
                    CLOSE_SECONDS,
                )
