"""Audiences as data: admin CRUD and bulk import over GraphQL, against SecantusDB."""

from __future__ import annotations

from typing import Any

import httpx
from pymongo import AsyncMongoClient

from tests.editors.keys import ADMIN, PREVIEW
from tests.graphql_helpers import graphql

FIELDS = "name description condition audiences audienceMatch"
CREATE = f"""
mutation($a: AudienceInput!) {{ createAudience(audience: $a) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation($n: String!, $a: AudienceInput!) {{
  updateAudience(name: $n, audience: $a) {{ {FIELDS} }} }}
"""
DELETE = "mutation($n: String!) { deleteAudience(name: $n) }"
IMPORT = """
mutation($s: String!, $r: Boolean!) { importAudiences(document: $s, replace: $r) {
  imported audiences { name audiences } } }
"""


async def _call(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await graphql(client, query, variables, headers=ADMIN)
    assert response.status_code == 200
    return response.json()


def _error(body: Any) -> tuple[str, str]:
    [error] = body["errors"]
    return error["extensions"]["code"], error["message"]


async def test_without_an_admin_key_audience_admin_is_refused(client: httpx.AsyncClient) -> None:
    variables = {"a": {"name": "x"}}
    body = (await graphql(client, CREATE, variables)).json()
    assert _error(body) == (
        "UNAUTHENTICATED",
        "This operation needs a key with the 'admin' permission: send Authorization: Bearer <key>.",
    )
    body = (await graphql(client, CREATE, variables, headers=PREVIEW)).json()
    assert _error(body) == ("FORBIDDEN", "A preview key does not allow 'admin'.")
    body = (await graphql(client, "{ audiences { name } }")).json()
    assert _error(body)[0] == "UNAUTHENTICATED"
    body = (
        await graphql(client, CREATE, variables, headers={"Authorization": "Bearer nope"})
    ).json()
    assert _error(body)[0] == "UNAUTHENTICATED"


async def test_create_update_delete_and_targeting_applies_at_once(
    client: httpx.AsyncClient, mongo: AsyncMongoClient[dict[str, object]], database_name: str
) -> None:
    created = await _call(
        client,
        CREATE,
        {"a": {"name": "germans", "condition": {"country": "DE"}, "description": "From DE"}},
    )
    assert created["data"]["createAudience"] == {
        "name": "germans",
        "description": "From DE",
        "condition": {"country": "DE"},
        "audiences": [],
        "audienceMatch": "ANY",
    }
    stored = await mongo[database_name]["audiences"].find_one({"_id": "germans"})
    assert stored is not None
    assert stored["condition"] == {"country": "DE"}
    # Visible to targeting without waiting for the background refresh.
    visitor = await graphql(
        client, "{ visitor { audiences } }", headers={"CF-IPCountry": "DE"}, visitor="v-de"
    )
    assert "germans" in visitor.json()["data"]["visitor"]["audiences"]

    updated = await _call(
        client,
        UPDATE,
        {"n": "germans", "a": {"name": "german_vips", "audiences": ["germans", "high_value"]}},
    )
    assert _error(updated) == (
        "BAD_USER_INPUT",
        "audiences.german_vips.audiences[0]: unknown audience 'germans'",
    )
    updated = await _call(
        client,
        UPDATE,
        {
            "n": "germans",
            "a": {"name": "germans", "condition": {"country": {"$in": ["DE", "AT"]}}},
        },
    )
    assert updated["data"]["updateAudience"]["condition"] == {"country": {"$in": ["DE", "AT"]}}

    both = await _call(
        client,
        CREATE,
        {
            "a": {
                "name": "german_vips",
                "audiences": ["germans", "high_value"],
                "audienceMatch": "ALL",
            }
        },
    )
    assert both["data"]["createAudience"]["audienceMatch"] == "ALL"
    refused = await _call(client, DELETE, {"n": "germans"})
    assert _error(refused) == ("BAD_USER_INPUT", "name: 'germans' is referenced by german_vips")
    assert (await _call(client, DELETE, {"n": "german_vips"}))["data"] == {"deleteAudience": True}
    assert (await _call(client, DELETE, {"n": "germans"}))["data"] == {"deleteAudience": True}
    missing = await _call(client, DELETE, {"n": "germans"})
    assert _error(missing) == ("NOT_FOUND", "name: no audience 'germans'")


async def test_bad_definitions_are_refused_precisely(client: httpx.AsyncClient) -> None:
    cases = [
        ({"name": "1x"}, "audience.name: '1x' is not a valid name"),
        (
            {"name": "x", "condition": {"traits.ltv": {"$gtee": 5}}},
            "audiences.x.condition.traits.ltv.$gtee: unknown operator '$gtee'",
        ),
        (
            {"name": "x", "condition": {"path": {"$regex": "(a+)+$"}}},
            "audiences.x.condition.path.$regex: pattern may backtrack catastrophically",
        ),
        (
            {"name": "x", "condition": {"utm.campaign": {"$regex": "a*a*a*b"}}},
            "audiences.x.condition.utm.campaign.$regex: pattern may backtrack catastrophically",
        ),
        ({"name": "high_value"}, "name: an audience 'high_value' already exists"),
        (
            {"name": "x", "audiences": ["nobody"]},
            "audiences.x.audiences[0]: unknown audience 'nobody'",
        ),
    ]
    for audience, message in cases:
        body = await _call(client, CREATE, {"a": audience})
        code, text = _error(body)
        assert code == "BAD_USER_INPUT"
        assert text.startswith(message), text


async def test_cycles_are_refused_naming_the_cycle(client: httpx.AsyncClient) -> None:
    await _call(client, CREATE, {"a": {"name": "a1", "audiences": ["returning"]}})
    await _call(client, CREATE, {"a": {"name": "a2", "audiences": ["a1"]}})
    body = await _call(client, UPDATE, {"n": "a1", "a": {"name": "a1", "audiences": ["a2"]}})
    assert _error(body) == (
        "BAD_USER_INPUT",
        "audiences.a1.audiences: audiences reference each other in a cycle: a1 → a2 → a1",
    )


async def test_bulk_import_from_a_file(client: httpx.AsyncClient) -> None:
    source = """
audiences:
  - name: big_spender
    condition: {"traits.ltv": {"$gte": 1000}}
  - name: loyal_big_spender
    audiences: [big_spender, returning]
    audienceMatch: all
"""
    body = await _call(client, IMPORT, {"s": source, "r": False})
    result = body["data"]["importAudiences"]
    assert result["imported"] == 2
    names = {a["name"]: a["audiences"] for a in result["audiences"]}
    assert names["loyal_big_spender"] == ["big_spender", "returning"]
    assert "new_visitor" in names  # kept: not a replace
    visitor = await graphql(client, "{ visitor { audiences } }", visitor="demo-vip")
    assert "loyal_big_spender" in visitor.json()["data"]["visitor"]["audiences"]

    cyclic = "audiences:\n  - {name: p, audiences: [q]}\n  - {name: q, audiences: [p]}\n"
    body = await _call(client, IMPORT, {"s": cyclic, "r": False})
    assert _error(body) == (
        "BAD_USER_INPUT",
        "audiences.p.audiences: audiences reference each other in a cycle: p → q → p",
    )
    body = await _call(client, IMPORT, {"s": "audiences: {oops", "r": False})
    assert _error(body)[1].startswith("document: not valid YAML/JSON")
    body = await _call(
        client, IMPORT, {"s": "audiences:\n  - {name: dup}\n  - {name: dup}\n", "r": False}
    )
    assert _error(body)[1] == "document: audiences[1].name: 'dup' is defined twice"
    # Hostile documents are the editor's error, not an internal one.
    body = await _call(client, IMPORT, {"s": "[" * 20_000, "r": False})
    assert _error(body) == ("BAD_USER_INPUT", "document: nested too deeply")
    huge = "audiences:\n  - {name: h, condition: {traits.ltv: {$gt: 0x" + "f" * 4000 + "}}}\n"
    body = await _call(client, IMPORT, {"s": huge, "r": False})
    code, text = _error(body)
    assert code == "BAD_USER_INPUT"
    assert "integers must fit in 64 bits" in text

    replaced = await _call(client, IMPORT, {"s": "[{name: only_one}]", "r": True})
    assert [a["name"] for a in replaced["data"]["importAudiences"]["audiences"]] == ["only_one"]
