"""The demo's running experiment through the real gateway and a real MongoDB-wire server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from starlette.applications import Starlette

from blocks.experiments import hash
from delivery.services import Services
from gateway.settings import Settings
from tests.graphql_helpers import graphql

PREVIEW_TOKEN = "preview-experiments"
KEY = "sale-hero-headline"
QUERY = """query($context: RequestContextInput) { page(slug: "sale", context: $context) {
  blocks { id blockId variantId decision { reason experiment bucket variation } } } }"""
PREVIEW_QUERY = """query($variation: Int!) { page(slug: "sale", preview: {
  experiments: [{experiment: "sale-hero-headline", variation: $variation}]}) {
  preview blocks { id blockId variantId decision { reason experiment bucket variation } } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"preview_tokens": SecretStr(PREVIEW_TOKEN)})


def _hero(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "errors" not in body, body
    blocks = body["data"]["page"]["blocks"]
    hero: dict[str, Any] = next(b for b in blocks if b["blockId"] == "sale-hero")
    return hero


def _expected(visitor: str) -> int:
    n = hash(KEY, visitor, 2)
    assert n is not None
    return 0 if n < 0.5 else 1


async def _flush(app: Starlette) -> Services:
    services: Services = app.state.services
    assert services.exposures is not None
    assert services.sticky is not None
    await services.exposures.flush()
    await services.sticky.flush()
    return services


async def test_a_new_visitor_is_enrolled_and_the_decision_says_so(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    arms = {}
    for visitor in (f"exp-visitor-{i}" for i in range(12)):
        hero = _hero(await graphql(client, QUERY, visitor=visitor))
        decision = hero["decision"]
        assert decision["reason"] == "experiment"
        assert decision["experiment"] == KEY
        assert decision["variation"] == _expected(visitor)
        assert decision["bucket"] == ("default", "deadline")[decision["variation"]]
        assert hero["variantId"] == decision["bucket"]
        arms[visitor] = decision["variation"]
    assert set(arms.values()) == {0, 1}
    await _flush(app)
    db = mongo[database_name]
    # The assignment is kept in each visitor's profile (GrowthBook's sticky bucket document).
    visitor, arm = next(iter(arms.items()))
    profile = await db["profiles"].find_one({"_id": visitor})
    assert profile is not None
    (doc,) = profile["stickyBuckets"].values()
    assert doc == {
        "attributeName": "visitorId",
        "attributeValue": visitor,
        "assignments": {f"{KEY}__0": ("default", "deadline")[arm]},
    }
    # Exposures say which experiment and variation each page view showed.
    exposure = await db["exposures"].find_one({"visitorId": visitor})
    assert exposure is not None
    entry = next(b for b in exposure["blocks"] if b["blockId"] == "sale-hero")
    assert (entry["experiment"], entry["variation"], entry["unit"]) == (
        KEY,
        arm,
        f"visitorId:{visitor}",
    )


async def test_the_profile_holding_only_assignments_reads_as_a_new_visitor(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    visitor = "exp-new-visitor"
    first = _hero(await graphql(client, QUERY, visitor=visitor))
    await _flush(app)
    response = await graphql(client, "{ visitor { known audiences } }", visitor=visitor)
    assert response.json()["data"]["visitor"] == {"known": False, "audiences": ["new_visitor"]}
    second = _hero(await graphql(client, QUERY, visitor=visitor))
    assert second["decision"] == first["decision"]


async def test_the_sticky_bucket_wins_over_the_hash(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    visitor = "exp-sticky"
    other = ("default", "deadline")[1 - _expected(visitor)]
    await mongo[database_name]["profiles"].insert_one(
        {
            "_id": visitor,
            "traits": {"pageViews": 1},
            "counts": {"page_view": 1},
            "stickyBuckets": {
                "k": {
                    "attributeName": "visitorId",
                    "attributeValue": visitor,
                    "assignments": {f"{KEY}__0": other},
                }
            },
        }
    )
    hero = _hero(await graphql(client, QUERY, visitor=visitor))
    assert hero["variantId"] == other
    assert hero["decision"]["variation"] == 1 - _expected(visitor)


async def test_members_are_kept_out_by_the_experiments_condition(client: httpx.AsyncClient) -> None:
    hero = _hero(await graphql(client, QUERY, visitor="demo-vip"))
    assert hero["variantId"] == "vip-extra"
    assert hero["decision"]["experiment"] is None


async def test_preview_forces_a_variation_and_logs_no_exposure(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, Any]],
    database_name: str,
) -> None:
    headers = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}
    for variation in (0, 1):
        response = await graphql(
            client, PREVIEW_QUERY, {"variation": variation}, headers=headers, visitor="qa-editor"
        )
        body = response.json()
        assert "errors" not in body, body
        hero = next(b for b in body["data"]["page"]["blocks"] if b["blockId"] == "sale-hero")
        assert hero["variantId"] == ("default", "deadline")[variation]
        assert hero["decision"] == {
            "reason": "preview:forced",
            "experiment": KEY,
            "bucket": hero["variantId"],
            "variation": variation,
        }
    await _flush(app)
    db = mongo[database_name]
    assert await db["exposures"].count_documents({}) == 0
    assert await db["profiles"].count_documents({"stickyBuckets": {"$exists": True}}) == 0


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"variation": 2}, "variations 0 to 1 (default, deadline), not 2", id="range"),
        pytest.param({"variation": -1}, "not -1", id="negative"),
    ],
)
async def test_a_forced_variation_out_of_range_is_refused(
    client: httpx.AsyncClient, variables: dict[str, Any], message: str
) -> None:
    headers = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}
    body = (await graphql(client, PREVIEW_QUERY, variables, headers=headers)).json()
    assert body["data"]["page"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


async def test_forcing_an_unknown_experiment_is_refused(client: httpx.AsyncClient) -> None:
    query = """{ page(slug: "sale", preview: {experiments: [{experiment: "nope", variation: 1}]})
      { slug } }"""
    headers = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}
    (error,) = (await graphql(client, query, headers=headers)).json()["errors"]
    message = "page 'sale' has no experiment 'nope'; experiments: sale-hero-headline"
    assert message in error["message"]


async def test_visitors_in_the_same_arm_share_the_cached_response(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    cache = app.state.response_cache
    visitors = [f"exp-cache-{i}" for i in range(40)]
    same_arm = [v for v in visitors if _expected(v) == 1][:3]
    assert len(same_arm) == 3
    bodies = []
    for visitor in same_arm:
        hits = cache.hits
        response = await graphql(client, QUERY, visitor=visitor)
        bodies.append(response.json())
        if len(bodies) > 1:
            # The decision is the arm's, not the visitor's: the same response is reused.
            assert cache.hits == hits + 1
    assert bodies[0] == bodies[1] == bodies[2]
