"""GDPR: export everything held about a visitor, or erase all of it.

A subject is found by visitor id (any of its aliases) or by user id, and
covers the profile, the merged visitors' stubs, the identity links, the raw
events, the consent history and the exposure log (one document per page
view). Erasure leaves one audit record holding no personal data: when, and
how many documents each collection lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from profiles.identity import IDENTITIES, resolve_id
from profiles.indexes import AUDIT, CONSENT_LOG, EVENTS
from profiles.store import PROFILES

EXPOSURES = "exposures"

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Subject:
    """Every id that names one person's data."""

    profile_ids: frozenset[str]
    user_ids: frozenset[str]

    def filters(self) -> dict[str, Doc]:
        """Collection → the filter matching this subject's documents there."""
        visitors = sorted(self.profile_ids)
        users = sorted(self.user_ids)
        return {
            PROFILES: {"_id": {"$in": visitors}},
            IDENTITIES: {"$or": [{"_id": {"$in": users}}, {"profileId": {"$in": visitors}}]},
            EVENTS: {"$or": [{"visitorId": {"$in": visitors}}, {"userId": {"$in": users}}]},
            CONSENT_LOG: {"visitorId": {"$in": visitors}},
            EXPOSURES: {"visitorId": {"$in": visitors}},
        }


async def find_subject(database: AsyncDatabase[Doc], subject_id: str) -> Subject | None:
    """The subject `subject_id` (a visitor or user id) names, or None if unknown."""
    profiles = database[PROFILES]
    start: str | None = None
    if await profiles.find_one({"_id": subject_id}, {"_id": 1}) is not None:
        start = subject_id
    else:
        identity = await database[IDENTITIES].find_one({"_id": subject_id})
        if identity is not None:
            start = str(identity["profileId"])
    if start is None:
        events = await database[EVENTS].find_one(
            {"$or": [{"visitorId": subject_id}, {"userId": subject_id}]}, {"_id": 1}
        )
        consent = await database[CONSENT_LOG].find_one({"visitorId": subject_id}, {"_id": 1})
        if events is None and consent is None:
            return None
        return Subject(frozenset({subject_id}), frozenset({subject_id}))
    canonical = await resolve_id(profiles, start)
    ids = {subject_id, start, canonical}
    document = await profiles.find_one({"_id": canonical}) or {}
    ids.update(document.get("aliases") or ())
    async for stub in profiles.find({"mergedInto": {"$in": sorted(ids)}}, {"_id": 1}):
        ids.add(stub["_id"])
    users = {str(document["userId"])} if document.get("userId") else set()
    async for identity in database[IDENTITIES].find({"profileId": {"$in": sorted(ids)}}):
        users.add(str(identity["_id"]))
    return Subject(frozenset(ids), frozenset(users))


async def export_subject(database: AsyncDatabase[Doc], subject_id: str) -> Doc | None:
    """Everything held about the subject, by collection; None if nothing is."""
    subject = await find_subject(database, subject_id)
    if subject is None:
        return None
    filters = subject.filters()
    out: Doc = {"subject": subject_id}
    for collection, query in filters.items():
        out[collection] = [doc async for doc in database[collection].find(query)]
    profiles = out[PROFILES]
    out["aliases"] = sorted(
        {str(p["_id"]) for p in profiles} | {a for p in profiles for a in p.get("aliases") or ()}
    )
    out["consentHistory"] = sorted(out.pop(CONSENT_LOG), key=lambda r: r.get("at") or 0)
    return out


async def erase_subject(database: AsyncDatabase[Doc], subject_id: str, now: datetime) -> Doc:
    """Delete everything held about the subject; idempotent; leaves an audit record."""
    subject = await find_subject(database, subject_id)
    deleted: dict[str, int] = {}
    if subject is not None:
        for collection, query in subject.filters().items():
            result = await database[collection].delete_many(query)
            deleted[collection] = result.deleted_count
    record = {"_id": uuid.uuid4().hex, "action": "erase", "at": now, "deleted": deleted}
    await database[AUDIT].insert_one(record)
    return {"erased": sum(deleted.values()), "deleted": deleted, "auditId": record["_id"]}
