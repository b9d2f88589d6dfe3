"""GDPR requests for a visitor who was only ever shown pages (issue 10, finding 7).

Such a visitor has exposure documents and nothing else: no profile, no
events, no consent record. `exportVisitor` returned null and `eraseVisitor`
erased nothing, so their page views stayed in the database. Every
collection that holds a person's data must identify them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from starlette.applications import Starlette

import profiles.indexes
import scoring.exposures
from profiles.gdpr import HOLDERS
from profiles.identity import IDENTITIES
from tests.graphql_helpers import ADMIN, PAGE_QUERY, graphql

Mongo = AsyncMongoClient[dict[str, Any]]

EXPORT = "query($id: ID!) { exportVisitor(id: $id) }"
ERASE = "mutation($id: ID!) { eraseVisitor(id: $id) { erased deleted auditId } }"
VIEWS = 7


async def test_a_visitor_only_shown_pages_is_exported_and_erased(
    client: httpx.AsyncClient, app: Starlette, mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    for visitor, views in (("gdpr-pages-only", VIEWS), ("gdpr-bystander", 2)):
        for _ in range(views):
            page = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor=visitor)
            assert "errors" not in page.json()
    await app.state.services.exposures.flush()
    assert await db["exposures"].count_documents({"visitorId": "gdpr-pages-only"}) == VIEWS
    assert await db["profiles"].find_one({"_id": "gdpr-pages-only"}) is None
    for collection in ("events", "consent_log"):
        assert await db[collection].find_one({"visitorId": "gdpr-pages-only"}) is None

    exported = (await graphql(client, EXPORT, {"id": "gdpr-pages-only"}, headers=ADMIN)).json()
    data = exported["data"]["exportVisitor"]
    assert data is not None, exported
    assert len(data["exposures"]) == VIEWS
    assert {exposure["visitorId"] for exposure in data["exposures"]} == {"gdpr-pages-only"}
    assert (data["profiles"], data["events"], data["aliases"]) == ([], [], [])

    erased = (await graphql(client, ERASE, {"id": "gdpr-pages-only"}, headers=ADMIN)).json()
    result = erased["data"]["eraseVisitor"]
    assert result["deleted"]["exposures"] == VIEWS
    assert result["erased"] == VIEWS
    async for doc in db["exposures"].find({}):
        assert "gdpr-pages-only" not in json.dumps(doc, default=str)
    assert await db["exposures"].count_documents({"visitorId": "gdpr-bystander"}) == 2
    gone = (await graphql(client, EXPORT, {"id": "gdpr-pages-only"}, headers=ADMIN)).json()
    assert gone["data"]["exportVisitor"] is None
    again = (await graphql(client, ERASE, {"id": "gdpr-pages-only"}, headers=ADMIN)).json()
    assert again["data"]["eraseVisitor"]["erased"] == 0


async def test_an_export_includes_page_views_still_queued(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    # A page view the gateway has not written yet is data it holds about the visitor.
    app.state.services.exposures.record([{"_id": "x-queued", "visitorId": "gdpr-queued"}])
    exported = (await graphql(client, EXPORT, {"id": "gdpr-queued"}, headers=ADMIN)).json()
    data = exported["data"]["exportVisitor"]
    assert data is not None, exported
    assert [exposure["_id"] for exposure in data["exposures"]] == ["x-queued"]


async def test_a_visitor_known_by_any_one_collection_is_found(
    client: httpx.AsyncClient, mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    # One document per collection and id field that names a person, and nothing else of them.
    for collection, (visitor_fields, user_fields) in HOLDERS.items():
        for field in (*visitor_fields, *user_fields):
            subject = f"only-{collection}-{field}"
            # Identity links always hold both ids; the other end names nothing else.
            document = {"_id": f"doc-{subject}", "profileId": f"other-{subject}"}
            if collection != IDENTITIES:
                document.pop("profileId")
            document[field] = subject
            await db[collection].insert_one(document)
            exported = (await graphql(client, EXPORT, {"id": subject}, headers=ADMIN)).json()
            assert exported["data"]["exportVisitor"] is not None, subject
            erased = (await graphql(client, ERASE, {"id": subject}, headers=ADMIN)).json()
            assert erased["data"]["eraseVisitor"]["erased"] == 1, subject
            assert await db[collection].count_documents({field: subject}) == 0, subject


def test_profiles_and_scoring_name_the_exposure_log_alike() -> None:
    # Spelt twice on purpose: profiles must not import scoring (a layer above it).
    assert profiles.indexes.EXPOSURES == scoring.exposures.EXPOSURES
    assert profiles.indexes.EXPOSURES in HOLDERS
