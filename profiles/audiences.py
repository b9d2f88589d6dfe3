"""Audience definitions stored in MongoDB, with an in-memory catalog for requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from blocks.audiences import Audience, AudienceSet

logger = logging.getLogger(__name__)

AUDIENCES = "audiences"


class AudienceRepository:
    """CRUD over the `audiences` collection (`_id` is the audience name)."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = database[AUDIENCES]

    async def load(self) -> AudienceSet:
        """Every stored audience; invalid ones are logged and left out."""
        audiences: list[Audience] = []
        async for document in self.collection.find({}):
            try:
                audience = Audience.from_document(document)
            except ValueError as exc:
                logger.warning("audience %r left out: %s", document.get("_id"), exc)
                continue
            if not audience.condition.valid:
                problems = "; ".join(str(p) for p in audience.condition.problems)
                logger.warning("audience %r has a malformed condition: %s", audience.name, problems)
            audiences.append(audience)
        return AudienceSet(audiences)

    async def upsert(self, name: str, condition: Mapping[str, Any], description: str = "") -> None:
        """Create or replace the audience `name`."""
        await self.collection.replace_one(
            {"_id": name},
            {"_id": name, "condition": dict(condition), "description": description},
            upsert=True,
        )


class AudienceCatalog:
    """The current audience set, refreshed from MongoDB in the background.

    Requests read `current` without I/O; a failed refresh keeps the last set.
    """

    def __init__(self, repository: AudienceRepository, *, refresh_seconds: float = 30.0) -> None:
        self.repository = repository
        self.refresh_seconds = refresh_seconds
        self.current = AudienceSet()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Reload the audiences now; keep the previous set if MongoDB fails."""
        try:
            self.current = await self.repository.load()
        except Exception as exc:
            logger.warning(
                "audience refresh failed, keeping %d audiences: %s", len(self.current), exc
            )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    def start(self) -> None:
        """Start refreshing in the background."""
        self._task = asyncio.create_task(self._loop(), name="audience-refresh")

    async def stop(self) -> None:
        """Stop the background refresh."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
