"""The MongoDB profile store: one document per visitor, keyed by visitor id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common import collections

PROFILES = collections.PROFILES
# A merged visitor's profile is a stub naming the profile it merged into.
MAX_HOPS = 4


class ProfileStore:
    """Reads and updates visitor profiles; every write is one atomic update."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = database[PROFILES]

    async def get(self, visitor_id: str) -> dict[str, Any] | None:
        """The visitor's profile document (following a merge), or None if never seen."""
        document = await self.collection.find_one({"_id": visitor_id})
        for _ in range(MAX_HOPS):
            if document is None:
                return None
            target = document.get("mergedInto") or document.get("mergingInto")
            if target is None:
                return document
            document = await self.collection.find_one({"_id": target})
        return document

    async def seed(self, profiles: Sequence[Mapping[str, Any]]) -> int:
        """Insert demo profiles that do not exist yet; returns how many were new."""
        created = 0
        for profile in profiles:
            result = await self.collection.update_one(
                {"_id": profile["_id"]},
                {"$setOnInsert": {k: v for k, v in profile.items() if k != "_id"}},
                upsert=True,
            )
            created += result.upserted_id is not None
        return created
