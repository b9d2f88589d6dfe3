"""Recommendations blocks served by the gateway: strategies, scope, exclusions, budget, logs."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from blocks.catalog import Catalog
from cms_adapters.filesystem import FilesystemAdapter
from delivery.services import Services
from gateway.settings import DEMO_CONTENT_DIR, Settings
from scoring.recommendations.interactions import interactions, read_events
from scoring.recommendations.models import Params, RecommendationModel, fit
from scoring.recommendations.online import online_report
from scoring.recommendations.synthetic import generate_events
from scoring.registry import RECOMMENDATIONS_MODEL, ModelRegistry
from tests.conftest import FIXED_NOW
from tests.graphql_helpers import ADMIN, INGEST, graphql
from tests.recommendations.models import BrokenModel, SlowModel

KEY = "recs-test-key"
POLL = 0.05
RECS = """
query($slug: String!, $context: RequestContextInput) {
  page(slug: $slug, context: $context) {
    cacheScope
    blocks {
      blockId variantId decision { reason }
      ... on RecommendationsBlock {
        title strategy source modelVersion products { sku name price url }
      }
    }
  }
}
"""
Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return asyncio.run(FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog())


@pytest.fixture(scope="module")
def trained(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> RecommendationModel:
    """Models fitted on shoppers with latent tastes (as `recommendations train` fits them)."""
    events = generate_events(catalog, visitors=1200, days=45, seed=11, end=FIXED_NOW)
    path = tmp_path_factory.mktemp("recs") / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    touches = interactions(read_events(path).events)
    return fit(touches, catalog, now=FIXED_NOW, params=Params())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "model_signing_key": SecretStr(KEY),
            "model_poll_seconds": POLL,
            "scoring_budget_ms": 1000.0,  # generous: shared CI machines are noisy
        }
    )


@pytest.fixture
def registry(mongo: Mongo, database_name: str) -> ModelRegistry:
    return ModelRegistry(mongo[database_name], KEY.encode())


async def _activate(registry: ModelRegistry, model: Any) -> str:
    info = await registry.save(
        model, kind=RECOMMENDATIONS_MODEL, metrics={}, features=[], window={}
    )
    await registry.activate(info.version)
    return info.version


async def _serving(services: Services, version: str | None) -> None:
    recs = services.recommendations
    assert recs is not None
    assert recs.server is not None
    deadline = time.monotonic() + 5.0
    while recs.server.version != version:
        assert time.monotonic() < deadline, f"still serving {recs.server.version}"
        await asyncio.sleep(POLL / 2)


async def _page(
    client: httpx.AsyncClient, visitor: str, slug: str = "home", path: str | None = None
) -> tuple[dict[str, Any], httpx.Response]:
    variables: dict[str, Any] = {"slug": slug}
    if path is not None:
        variables["context"] = {"path": path}
    response = await graphql(client, RECS, variables, visitor=visitor)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["page"], response


def _block(page: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in page["blocks"] if b["blockId"] == block_id)


async def _browse(
    client: httpx.AsyncClient, visitor: str, products: list[str], catalog: Catalog
) -> None:
    events = []
    for sku in products:
        product = catalog.get(sku)
        assert product is not None
        events.append(
            {
                "type": "page_view",
                "eventId": uuid.uuid4().hex,
                "visitorId": visitor,
                "properties": {"productId": sku, "category": product.category},
            }
        )
    response = await client.post("/v1/events", json=events, headers=INGEST)
    assert response.status_code == 200, response.text


def _in(catalog: Catalog, category: str) -> list[str]:
    return [p.sku for p in catalog.products if p.category == category]


def _share(catalog: Catalog, skus: list[str], category: str) -> float:
    return sum(1 for s in skus if catalog.get(s).category == category) / max(1, len(skus))  # type: ignore[union-attr]


async def test_recommended_for_you_changes_after_browsing_a_category(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
) -> None:
    version = await _activate(registry, trained)
    async with gateway() as (client, services):
        await _serving(services, version)
        visitor = "shopper-1"
        page, response = await _page(client, visitor)
        block = _block(page, "home-recommendations")
        assert block["title"] == "Recommended for you"
        assert block["strategy"] == "PERSONALIZED"
        assert block["source"] == "popularity"  # no history yet: cold start
        assert block["modelVersion"] == version
        before = [p["sku"] for p in block["products"]]
        assert len(before) == 6
        # A first visit read only that there is no history: still shared under the edge key.
        assert page["cacheScope"] == "AUDIENCE"

        await _browse(client, visitor, _in(catalog, "climbing")[:4], catalog)
        page, response = await _page(client, visitor)
        block = _block(page, "home-recommendations")
        climbing = [p["sku"] for p in block["products"]]
        assert block["source"] == "hybrid"
        assert climbing != before
        assert _share(catalog, climbing, "climbing") >= 0.5, climbing
        # The visitor's own history: never shared.
        assert page["cacheScope"] == "PRIVATE"
        assert response.headers["cache-control"] == "private, no-store"

        await _browse(client, visitor, _in(catalog, "water")[:6] * 2, catalog)
        page, _ = await _page(client, visitor)
        water = [p["sku"] for p in _block(page, "home-recommendations")["products"]]
        assert water != climbing
        assert _share(catalog, water, "water") > _share(catalog, climbing, "water")


async def test_without_a_model_the_block_falls_back_to_the_visitors_categories(
    gateway: Callable[..., Any], catalog: Catalog
) -> None:
    async with gateway() as (client, _):
        page, _ = await _page(client, "fresh")
        block = _block(page, "home-recommendations")
        assert block["source"] == "fallback:no-model"
        before = [p["sku"] for p in block["products"]]
        # Nothing counted yet, no model: the catalogue's own order rather than nothing.
        assert before == list(catalog.skus[:6])
        await _browse(client, "fresh", _in(catalog, "running")[:3], catalog)
        page, _ = await _page(client, "fresh")
        after = [p["sku"] for p in _block(page, "home-recommendations")["products"]]
        assert after != before
        assert _share(catalog, after, "running") == 1.0, after
        assert page["cacheScope"] == "PRIVATE"


async def test_a_product_page_is_public_similar_together_and_trending(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
) -> None:
    version = await _activate(registry, trained)
    async with gateway() as (client, services):
        await _serving(services, version)
        tent = catalog.get("TENT-2P")
        assert tent is not None
        # The tent trends: everyone looked at it.
        await _browse(client, "c", ["TENT-2P"] * 8, catalog)
        assert services.recommendations.trending is not None
        await services.recommendations.trending.refresh()
        assert services.recommendations.trending.ranking[0] == "TENT-2P"
        first, response = await _page(client, "a", "product", path="/p/tent-2p")
        assert first["cacheScope"] == "PUBLIC"
        assert response.headers["x-tessera-cache-scope"] == "public"
        assert "public" in response.headers["cache-control"]
        similar = _block(first, "product-similar")
        assert similar["source"] == "similar"
        skus = [p["sku"] for p in similar["products"]]
        assert len(skus) == 6
        assert "TENT-2P" not in skus
        assert _share(catalog, skus, "outdoor") >= 0.5
        together = _block(first, "product-together")
        assert together["source"] in ("together", "similar")
        assert "TENT-2P" not in [p["sku"] for p in together["products"]]
        trending = _block(first, "product-trending")
        assert trending["source"] == "trending"
        # The page's own product is left out of every block, trending too; the block is
        # filled after the one trending product (with the model's most popular).
        assert [p["sku"] for p in trending["products"]] == trained.popular(6, {"TENT-2P"})
        # Someone with a cart and a history sees the same page: nothing about them was read.
        await _browse(client, "b", _in(catalog, "winter")[:3], catalog)
        second, response = await _page(client, "b", "product", path="/p/tent-2p")
        assert second == first
        assert response.headers["x-tessera-cache-scope"] == "public"
        # Another product, other neighbours.
        other, _ = await _page(client, "a", "product", path="/p/rope-dynamic-unknown")
        assert _block(other, "product-similar")["source"] == "fallback:no-product"


async def test_bought_and_carted_products_are_never_recommended(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
    mongo: Mongo,
    database_name: str,
) -> None:
    version = await _activate(registry, trained)
    async with gateway() as (client, services):
        await _serving(services, version)
        visitor = "owner"
        await _browse(client, visitor, _in(catalog, "hiking")[:3], catalog)
        page, _ = await _page(client, visitor)
        shown = [p["sku"] for p in _block(page, "home-recommendations")["products"]]
        bought, carted = shown[0], shown[1]
        price = catalog.get(bought).price  # type: ignore[union-attr]
        events = [
            {
                "type": "add_to_cart",
                "eventId": uuid.uuid4().hex,
                "visitorId": visitor,
                "properties": {"productId": bought, "price": price},
            },
            {
                "type": "purchase",
                "eventId": uuid.uuid4().hex,
                "visitorId": visitor,
                "properties": {"revenue": price},
            },
            {
                "type": "add_to_cart",
                "eventId": uuid.uuid4().hex,
                "visitorId": visitor,
                "properties": {"productId": carted, "price": 1.0},
            },
        ]
        assert (await client.post("/v1/events", json=events, headers=INGEST)).status_code == 200
        profile = await mongo[database_name].profiles.find_one({"_id": visitor})
        assert [item["productId"] for item in profile["purchased"]] == [bought]
        page, _ = await _page(client, visitor)
        after = [p["sku"] for p in _block(page, "home-recommendations")["products"]]
        assert len(after) == 6
        assert bought not in after
        assert carted not in after


async def test_a_slow_model_costs_the_block_its_model_never_the_page_its_latency(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
) -> None:
    slow = SlowModel(**{f: getattr(trained, f) for f in RecommendationModel.__dataclass_fields__})
    version = await _activate(registry, slow)
    async with gateway(scoring_budget_ms=50.0) as (client, services):
        await _serving(services, version)
        await _browse(client, "hurried", _in(catalog, "travel")[:2], catalog)
        started = time.monotonic()
        page, _ = await _page(client, "hurried")
        elapsed = time.monotonic() - started
        block = _block(page, "home-recommendations")
        assert block["source"] == "fallback:timeout"
        assert block["modelVersion"] == version
        assert len(block["products"]) == 6
        # The fallback still reads the visitor's categories.
        assert _share(catalog, [p["sku"] for p in block["products"]], "travel") == 1.0
        assert elapsed < 1.5  # far below the model's 2 s


async def test_a_failing_model_falls_back(
    gateway: Callable[..., Any], registry: ModelRegistry, trained: RecommendationModel
) -> None:
    broken = BrokenModel(
        **{f: getattr(trained, f) for f in RecommendationModel.__dataclass_fields__}
    )
    version = await _activate(registry, broken)
    async with gateway() as (client, services):
        await _serving(services, version)
        page, _ = await _page(client, "anyone")
        block = _block(page, "home-recommendations")
        assert block["source"] == "fallback:error"
        assert len(block["products"]) == 6


async def test_exposures_and_clicks_evaluate_recommendations_online(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
    mongo: Mongo,
    database_name: str,
) -> None:
    version = await _activate(registry, trained)
    async with gateway() as (client, services):
        await _serving(services, version)
        await _browse(client, "clicker", _in(catalog, "cycling")[:3], catalog)
        page, _ = await _page(client, "clicker")
        block = _block(page, "home-recommendations")
        clicked = block["products"][0]["sku"]
        event = {
            "type": "click",
            "eventId": uuid.uuid4().hex,
            "visitorId": "clicker",
            "blockId": "home-recommendations",
            "variantId": block["variantId"],
            "properties": {"productId": clicked},
        }
        assert (await client.post("/v1/events", json=[event], headers=INGEST)).status_code == 200
        await _page(client, "other")
        assert services.exposures is not None
        await services.exposures.flush()
    database = mongo[database_name]
    docs = [d async for d in database.exposures.find({"visitorId": "clicker"})]
    logged = next(
        b["recommendations"] for b in docs[0]["blocks"] if b["blockId"] == "home-recommendations"
    )
    assert logged["strategy"] == "personalized"
    assert logged["source"] == "hybrid"
    assert logged["modelVersion"] == version
    assert logged["items"] == [p["sku"] for p in block["products"]]
    report = await online_report(database, since=datetime(2000, 1, 1, tzinfo=UTC))
    rows = {(r.block, r.strategy, r.source): r for r in report.rows}
    hybrid = rows["home-recommendations", "personalized", "hybrid"]
    assert (hybrid.impressions, hybrid.clicks) == (1, 1)
    cold = rows["home-recommendations", "personalized", "popularity"]
    assert (cold.impressions, cold.clicks) == (1, 0)
    assert "home-recommendations" in report.format()


async def test_preview_shows_recommendations_for_a_stored_visitor(
    gateway: Callable[..., Any], catalog: Catalog
) -> None:
    async with gateway() as (client, _):
        await _browse(client, "previewed", _in(catalog, "winter")[:3], catalog)
        query = RECS.replace(
            "page(slug: $slug, context: $context)",
            'page(slug: $slug, context: $context, preview: {visitorId: "previewed"})',
        )
        response = await graphql(client, query, {"slug": "home"}, headers=ADMIN)
        body = response.json()
        assert "errors" not in body, body
        page = body["data"]["page"]
        assert page["cacheScope"] == "PRIVATE"
        skus = [p["sku"] for p in _block(page, "home-recommendations")["products"]]
        assert _share(catalog, skus, "winter") == 1.0
        assert response.headers["cache-control"] == "private, no-store"


def _experiment_content(root: Path) -> Path:
    """A page whose recommendations block tests personalized against trending."""
    (root / "catalog").mkdir(parents=True)
    shutil.copy(DEMO_CONTENT_DIR / "catalog" / "products.yaml", root / "catalog")
    page = {
        "slug": "shop",
        "title": "Shop",
        "blocks": [
            {
                "id": "shop-recs",
                "type": "recommendations",
                "variants": [
                    {
                        "id": "for-you",
                        "default": True,
                        "fields": {"title": "For you", "strategy": "personalized", "limit": 4},
                        "experiment": {
                            "key": "recs-strategy",
                            "status": "running",
                            "start": "2026-11-01T00:00:00Z",
                            "variations": ["for-you", "popular-now"],
                        },
                    },
                    {
                        "id": "popular-now",
                        "fields": {"title": "Popular now", "strategy": "trending", "limit": 4},
                    },
                ],
            }
        ],
    }
    (root / "pages").mkdir()
    (root / "pages" / "shop.yaml").write_text(yaml.safe_dump(page), encoding="utf-8")
    return root


async def test_strategies_take_part_in_experiments(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    mongo: Mongo,
    database_name: str,
    tmp_path: Path,
) -> None:
    version = await _activate(registry, trained)
    query = RECS.replace("products { sku name price url }", "products { sku }").replace(
        "decision { reason }", "decision { reason experiment variation }"
    )
    async with gateway(content_dir=_experiment_content(tmp_path / "content")) as (client, services):
        await _serving(services, version)
        arms: dict[str, str] = {}
        for n in range(30):
            body = (await graphql(client, query, {"slug": "shop"}, visitor=f"exp-{n}")).json()
            block = body["data"]["page"]["blocks"][0]
            assert block["decision"]["experiment"] == "recs-strategy"
            expected = {"for-you": "PERSONALIZED", "popular-now": "TRENDING"}
            assert block["strategy"] == expected[block["variantId"]]
            assert len(block["products"]) == 4
            arms[f"exp-{n}"] = block["variantId"]
        assert set(arms.values()) == {"for-you", "popular-now"}
        assert services.exposures is not None
        await services.exposures.flush()
    async for doc in mongo[database_name].exposures.find({"page": "shop"}):
        [entry] = doc["blocks"]
        assert entry["experiment"] == "recs-strategy"
        assert entry["variantId"] == arms[doc["visitorId"]]
        strategy = {"for-you": "personalized", "popular-now": "trending"}[entry["variantId"]]
        assert entry["recommendations"]["strategy"] == strategy
        assert len(entry["recommendations"]["items"]) == 4


def _edge_key(response: httpx.Response) -> str:
    found = [
        item.split("tsr_ek=", 1)[1].split(";", 1)[0]
        for item in response.headers.get_list("set-cookie")
        if "tsr_ek=" in item
    ]
    assert found, response.headers
    return found[-1]


async def test_a_first_visit_is_shared_at_the_edge_until_the_visitor_has_a_history(
    gateway: Callable[..., Any],
    registry: ModelRegistry,
    trained: RecommendationModel,
    catalog: Catalog,
) -> None:
    version = await _activate(registry, trained)
    async with gateway() as (client, services):
        await _serving(services, version)
        first, response = await _page(client, "edge-visitor")
        assert response.headers["cache-control"] == "private, no-store"  # no key presented yet
        key = _edge_key(response)
        headers = {"X-Visitor-Id": "edge-visitor", "X-Tessera-Edge-Key": key}
        shared = await client.post(
            "/graphql", json={"query": RECS, "variables": {"slug": "home"}}, headers=headers
        )
        assert shared.headers["x-tessera-cache-scope"] == "audience"
        assert shared.headers["x-tessera-edge-key"] == key
        assert shared.json()["data"]["page"] == first
        # Another first-time visitor with the same facts (the client's cookie jar presents
        # the key) shares the page under the same key.
        other, other_response = await _page(client, "edge-other")
        assert other_response.headers["x-tessera-cache-scope"] == "audience"
        assert other_response.headers["x-tessera-edge-key"] == key
        assert other == first
        # Browsing a product changes what the block reads: a new key, a private page.
        await _browse(client, "edge-visitor", _in(catalog, "water")[:2], catalog)
        warm = await client.post(
            "/graphql", json={"query": RECS, "variables": {"slug": "home"}}, headers=headers
        )
        assert warm.headers["cache-control"] == "private, no-store"
        assert _edge_key(warm) != key
        assert warm.json()["data"]["page"]["cacheScope"] == "PRIVATE"
