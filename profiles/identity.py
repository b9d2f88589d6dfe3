"""Identity: link an anonymous visitor to a known user, merging their profiles.

The first profile identified as a user becomes the user's profile
(`identities` maps the user id to it). A later visitor identified as the same
user is merged into it in three idempotent steps, safe to repeat after a crash
and under concurrency: freeze the source (`mergingInto`, so writers redirect),
fold it into the target once (the target's `aliases` records it), then leave a
stub (`mergedInto`) that routes the visitor's later events and reads.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common import collections
from profiles.store import MAX_HOPS, PROFILES
from profiles.traits import merge_profiles, new_profile

logger = logging.getLogger(__name__)

IDENTITIES = collections.IDENTITIES
MAX_ATTEMPTS = 50

Doc = dict[str, Any]


def redirect(document: Doc | None) -> str | None:
    """Where a merged (or merging) profile's data now lives, if anywhere."""
    if document is None:
        return None
    target = document.get("mergedInto") or document.get("mergingInto")
    return str(target) if target is not None else None


async def resolve_id(profiles: AsyncCollection[Doc], profile_id: str) -> str:
    """The id of the profile that holds `profile_id`'s data now."""
    for _ in range(MAX_HOPS):
        target = redirect(
            await profiles.find_one({"_id": profile_id}, {"mergedInto": 1, "mergingInto": 1})
        )
        if target is None:
            return profile_id
        profile_id = target
    return profile_id


async def finish_merge(profiles: AsyncCollection[Doc], source_id: str, now: datetime) -> None:
    """Complete a merge whose source is frozen (idempotent)."""
    source = await profiles.find_one({"_id": source_id})
    if source is None or "mergingInto" not in source:
        return
    target_id = str(source["mergingInto"])
    for _ in range(MAX_ATTEMPTS):
        target = await profiles.find_one({"_id": target_id})
        if target is not None and source_id in (target.get("aliases") or ()):
            break
        if target is None:
            merged = merge_profiles(new_profile(target_id, now), source, now=now)
            try:
                await profiles.insert_one(merged)
            except DuplicateKeyError:
                continue
            break
        merged = merge_profiles(target, source, now=now)
        result = await profiles.replace_one(_version_filter(target), merged)
        if result.matched_count:
            break
    else:
        raise RuntimeError(f"merge of {source_id!r} kept conflicting; it will be retried")
    stub = {
        "_id": source_id,
        "mergedInto": target_id,
        "mergedAt": now,
        "version": int(source.get("version", 0)) + 1,
    }
    await profiles.replace_one({"_id": source_id, "mergingInto": target_id}, stub)


def _version_filter(document: Doc) -> Doc:
    if "version" in document:
        return {"_id": document["_id"], "version": document["version"]}
    return {"_id": document["_id"], "version": {"$exists": False}}


async def link(database: AsyncDatabase[Doc], profile_id: str, user_id: str, now: datetime) -> str:
    """Link the visitor profile `profile_id` to `user_id`; returns the user's profile id."""
    profiles = database[PROFILES]
    identities = database[IDENTITIES]
    identity: Doc | None = None
    for _ in range(3):
        try:
            identity = await identities.find_one_and_update(
                {"_id": user_id},
                {"$setOnInsert": {"profileId": profile_id, "createdAt": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            break
        except DuplicateKeyError:  # a concurrent first identify won the upsert
            continue
    assert identity is not None
    source_id = await resolve_id(profiles, profile_id)
    target_id = await resolve_id(profiles, str(identity["profileId"]))
    if source_id == target_id:
        await profiles.update_one(
            {"_id": target_id, "userId": {"$exists": False}}, {"$set": {"userId": user_id}}
        )
        return target_id
    source = await profiles.find_one({"_id": source_id}, {"userId": 1})
    if source is not None and source.get("userId") not in (None, user_id):
        # A profile belongs to one user; a shared device does not merge two users.
        logger.info("identify left a profile already linked to another user unmerged")
        return source_id
    await profiles.update_one(
        {"_id": source_id, "mergedInto": {"$exists": False}, "mergingInto": {"$exists": False}},
        {"$set": {"mergingInto": target_id}, "$inc": {"version": 1}},
    )
    await finish_merge(profiles, source_id, now)
    return target_id
