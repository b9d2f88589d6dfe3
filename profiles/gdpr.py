"""GDPR: export everything held about a visitor, or erase all of it.

A subject is found by visitor id (any of its aliases) or by user id in any
collection that holds a person's data (:data:`HOLDERS`), and covers the
profile, the merged visitors' stubs, the identity links, the raw events, the
consent history and the exposure log (one document per page view, so a
visitor who was only ever shown pages is a subject too). Erasure leaves one
audit record holding no personal data: when, and how many documents each
collection lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from profiles.identity import IDENTITIES, resolve_id
from profiles.indexes import AUDIT, CONSENT_LOG, EVENTS, EXPOSURES
from profiles.store import PROFILES

Doc = dict[str, Any]

#: Every collection holding a person's data: (fields naming a visitor, fields naming a user).
#: A subject is found from any of them; what each subject covers is filtered by them too.
HOLDERS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    PROFILES: (("_id",), ()),
    IDENTITIES: (("profileId",), ("_id",)),
    EVENTS: (("visitorId",), ("userId",)),
    CONSENT_LOG: (("visitorId",), ()),
    # One document per page view, even for a visitor with no profile and no events.
    EXPOSURES: (("visitorId",), ()),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """Every id that names one person's data."""

    profile_ids: frozenset[str]
    user_ids: frozenset[str]

    def filters(self) -> dict[str, Doc]:
        """Collection → the filter matching this subject's documents there."""
        visitors = sorted(self.profile_ids)
        users = sorted(self.user_ids)
        filters: dict[str, Doc] = {}
        for collection, (visitor_fields, user_fields) in HOLDERS.items():
            clauses = [{name: {"$in": visitors}} for name in visitor_fields]
            clauses += [{name: {"$in": users}} for name in user_fields]
            filters[collection] = clauses[0] if len(clauses) == 1 else {"$or": clauses}
        return filters


async def _held_anywhere(database: AsyncDatabase[Doc], subject_id: str) -> bool:
    """Whether any collection holds a document naming `subject_id`, as visitor or user."""
    for collection, (visitor_fields, user_fields) in HOLDERS.items():
        clauses = [{name: subject_id} for name in (*visitor_fields, *user_fields)]
        if await database[collection].find_one({"$or": clauses}, {"_id": 1}) is not None:
            return True
    return False


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
        # No profile: the id may still name events, consent records or page views.
        if not await _held_anywhere(database, subject_id):
            return None
        users = {subject_id}
        async for identity in database[IDENTITIES].find({"profileId": subject_id}):
            users.add(str(identity["_id"]))
        return Subject(frozenset({subject_id}), frozenset(users))
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
