"""Serving: model-ranked decisions over GraphQL, hot reload, refusal, budget, exposures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from delivery.services import Services
from gateway.settings import Settings
from scoring.exposures import EXPOSURES, ExposureLog, block_exposures
from scoring.registry import BUCKET, STATE, ModelRegistry
from scoring.serving import ModelServer
from tests.graphql_helpers import ADMIN, graphql
from tests.scoring.models import BrokenModel, SlowModel, fitted

CONTENT = Path(__file__).resolve().parents[1] / "fixtures" / "ranked_content"
KEY = "serving-test-key"
POLL = 0.05

QUERY = """
query($slug: String!) {
  page(slug: $slug) {
    blocks { blockId variantId decision { variantId reason score propensity modelVersion } }
  }
}
"""

Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "content_dir": CONTENT,
            "model_signing_key": SecretStr(KEY),
            "model_poll_seconds": POLL,
            "scoring_budget_ms": 2000.0,  # generous: shared CI machines are noisy
            "exploration_epsilon": 0.0,
            "response_cache_size": 0,
        }
    )


@pytest.fixture
def registry(mongo: Mongo, database_name: str) -> ModelRegistry:
    return ModelRegistry(mongo[database_name], KEY.encode())


async def _save(registry: ModelRegistry, estimator: Any) -> str:
    info = await registry.save(estimator, kind="variant", metrics={}, features=[], window={})
    return info.version


async def _serving(services: Services, version: str | None) -> None:
    """Wait (a few seconds at most) until the gateway's model server serves `version`."""
    assert services.scorer is not None
    deadline = time.monotonic() + 5.0
    while services.scorer.version != version:
        assert time.monotonic() < deadline, f"still serving {services.scorer.version}"
        await asyncio.sleep(POLL / 2)


async def _hero(client: httpx.AsyncClient, visitor: str = "v-1") -> dict[str, Any]:
    response = await graphql(client, QUERY, {"slug": "deals"}, visitor=visitor)
    body = response.json()
    assert "errors" not in body, body
    block: dict[str, Any] = body["data"]["page"]["blocks"][0]
    assert block["blockId"] == "deals-hero"
    return block


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


# -- ranking and hot reload --------------------------------------------------------


async def test_decisions_follow_the_models_ranking(
    gateway: Callable[..., Any], registry: ModelRegistry
) -> None:
    version = await _save(registry, fitted("story"))
    await registry.activate(version)
    async with gateway() as (client, _):
        hero = await _hero(client)
    decision = hero["decision"]
    assert hero["variantId"] == "story"
    assert decision["reason"] == "score"
    assert decision["propensity"] == 1.0
    assert decision["modelVersion"] == version
    assert decision["score"] > 0.5


async def test_without_a_model_the_earlier_variant_wins(gateway: Callable[..., Any]) -> None:
    async with gateway() as (client, _):
        hero = await _hero(client)
    assert hero["decision"] == {
        "variantId": "sale",
        "reason": "priority",
        "score": None,
        "propensity": 1.0,
        "modelVersion": None,
    }


async def test_a_newly_activated_model_serves_without_restart(
    gateway: Callable[..., Any], registry: ModelRegistry
) -> None:
    story = await _save(registry, fitted("story"))
    sale = await _save(registry, fitted("sale"))
    await registry.activate(story)
    async with gateway() as (client, services):
        assert (await _hero(client))["variantId"] == "story"
        await registry.activate(sale)
        await _serving(services, sale)
        hero = await _hero(client)
        assert (hero["variantId"], hero["decision"]["modelVersion"]) == ("sale", sale)
        assert _sample("tessera_active_model", {"kind": "variant", "version": sale}) == 1.0
        # Rolling back past the first activation leaves no model: priority order again.
        await registry.rollback()
        await _serving(services, story)
        await registry.rollback()
        await _serving(services, None)
        hero = await _hero(client)
        assert (hero["variantId"], hero["decision"]["reason"]) == ("sale", "priority")


async def test_a_tampered_artifact_is_refused_and_the_previous_model_keeps_serving(
    gateway: Callable[..., Any], registry: ModelRegistry, mongo: Mongo, database_name: str
) -> None:
    good = await _save(registry, fitted("story"))
    await registry.activate(good)
    bad = await _save(registry, fitted("sale"))
    db = mongo[database_name]
    info = await db["models.registry"].find_one({"_id": bad})
    assert info is not None
    chunk = await db[f"{BUCKET}.chunks"].find_one({"files_id": info["fileId"]})
    assert chunk is not None
    data = bytearray(chunk["data"])
    data[len(data) // 2] ^= 0xFF
    await db[f"{BUCKET}.chunks"].update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    failures = _sample("tessera_model_load_failures_total", {"kind": "variant"})
    async with gateway() as (client, services):
        # Bypass `activate` (which would refuse it too), as a hostile write would.
        await db[STATE].update_one({"_id": "variant"}, {"$set": {"active": bad}})
        # Wait (with a deadline) for the refusal, then for several more polls.
        deadline = time.monotonic() + 10.0
        while _sample("tessera_model_load_failures_total", {"kind": "variant"}) == failures:
            assert time.monotonic() < deadline, "the tampered version was never refused"
            await asyncio.sleep(POLL / 2)
        await asyncio.sleep(POLL * 10)
        assert services.scorer is not None
        assert services.scorer.version == good
        hero = await _hero(client)
        assert (hero["variantId"], hero["decision"]["modelVersion"]) == ("story", good)
    # Refused once, not on every poll.
    assert _sample("tessera_model_load_failures_total", {"kind": "variant"}) == failures + 1


async def test_a_slow_model_never_delays_the_page_beyond_the_budget(
    gateway: Callable[..., Any], registry: ModelRegistry
) -> None:
    version = await _save(registry, SlowModel())
    await registry.activate(version)
    timeouts = _sample("tessera_scoring_total", {"outcome": "timeout"})
    async with gateway(scoring_budget_ms=50.0) as (client, _):
        for visitor in ("v-1", "v-2"):
            started = time.perf_counter()
            hero = await _hero(client, visitor)
            # Well before the model's 2 s call ends, with room for a loaded machine.
            assert time.perf_counter() - started < 1.5
            assert hero["variantId"] == "sale"
            assert hero["decision"]["reason"] == "fallback:score-timeout"
            assert hero["decision"]["propensity"] == 1.0
    assert _sample("tessera_scoring_total", {"outcome": "timeout"}) == timeouts + 2


async def test_a_failing_model_falls_back_with_a_reason(
    gateway: Callable[..., Any], registry: ModelRegistry
) -> None:
    version = await _save(registry, BrokenModel())
    await registry.activate(version)
    async with gateway() as (client, _):
        hero = await _hero(client)
    assert (hero["variantId"], hero["decision"]["reason"]) == ("sale", "fallback:score-error")


async def test_exploration_with_a_model_logs_propensities(
    gateway: Callable[..., Any], registry: ModelRegistry
) -> None:
    version = await _save(registry, fitted("story"))
    await registry.activate(version)
    async with gateway(exploration_epsilon=1.0) as (client, _):
        heroes = [await _hero(client, f"v-{i}") for i in range(30)]
    assert {h["variantId"] for h in heroes} == {"sale", "story"}
    assert {h["decision"]["reason"] for h in heroes} == {"explore"}
    assert {h["decision"]["propensity"] for h in heroes} == {0.5}


async def test_the_server_starts_without_a_loadable_model(
    registry: ModelRegistry, mongo: Mongo, database_name: str
) -> None:
    version = await _save(registry, fitted("story"))
    await mongo[database_name][STATE].update_one(
        {"_id": "variant"}, {"$set": {"active": version}}, upsert=True
    )
    await mongo[database_name]["models.registry"].update_one(
        {"_id": version}, {"$set": {"signature": "0" * 64}}
    )
    async with ModelServer(registry, budget=1.0, poll_seconds=POLL) as server:
        assert server.version is None


# -- exposures ---------------------------------------------------------------------


PAGE_KEYS = {
    "_id",
    "visitorId",
    "page",
    "locale",
    "ts",
    "personalized",
    "modelVersion",
    "features",
    "blocks",
}
BLOCK_KEYS = {
    "blockId",
    "variantId",
    "reason",
    "ruleId",
    "score",
    "propensity",
    "modelVersion",
    "candidates",
}


async def test_a_served_page_view_logs_one_document_holding_its_blocks(
    gateway: Callable[..., Any], registry: ModelRegistry, mongo: Mongo, database_name: str
) -> None:
    version = await _save(registry, fitted("story"))
    await registry.activate(version)
    logged = _sample("tessera_exposures_logged_total")
    async with gateway() as (client, services):
        response = await graphql(client, QUERY, {"slug": "deals"}, visitor="v-exposed")
        served = response.json()["data"]["page"]["blocks"]
        assert services.exposures is not None
        await services.exposures.flush()
    documents = await mongo[database_name][EXPOSURES].find({}).to_list()
    assert len(documents) == 1
    assert _sample("tessera_exposures_logged_total") == logged + 1  # page documents
    (page,) = documents
    assert set(page) == PAGE_KEYS
    assert len(page["_id"]) == 32
    assert (page["visitorId"], page["page"], page["locale"]) == ("v-exposed", "deals", "en-US")
    assert (page["personalized"], page["modelVersion"]) == (True, version)
    assert page["features"]["device"] == "desktop"
    assert page["ts"] == services.clock()
    # The blocks, in page order, are exactly the decisions the page was served with.
    assert all(set(block) == BLOCK_KEYS for block in page["blocks"])
    fields = ("variantId", "reason", "score", "propensity", "modelVersion")
    assert [(b["blockId"], *(b["decision"][f] for f in fields)) for b in served] == [
        (b["blockId"], *(b[f] for f in fields)) for b in page["blocks"]
    ]
    hero, banner = page["blocks"]
    assert [b["blockId"] for b in page["blocks"]] == ["deals-hero", "deals-banner"]
    assert (hero["variantId"], hero["reason"], hero["modelVersion"]) == ("story", "score", version)
    assert hero["ruleId"] == "deals-hero/story"
    assert hero["propensity"] == 1.0
    assert [(c["variantId"], c["tags"]) for c in hero["candidates"]] == [
        ("sale", ["discount"]),
        ("story", ["brand"]),
    ]
    sale_score, story_score = (c["score"] for c in hero["candidates"])
    assert story_score == hero["score"] > sale_score
    assert banner["candidates"] == [{"variantId": "default", "tags": [], "score": None}]
    assert (banner["reason"], banner["score"], banner["modelVersion"]) == ("default", None, None)
    # Flattened, the page view gives back one per-block record each, as before.
    records = block_exposures(page)
    assert [r["_id"] for r in records] == [f"{page['_id']}:0", f"{page['_id']}:1"]
    assert records[0]["blockId"] == "deals-hero"
    assert records[1]["features"] == page["features"]


async def test_previews_and_visitors_without_analytics_consent_log_nothing(
    gateway: Callable[..., Any], mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    await db["profiles"].insert_one({"_id": "v-private", "consent": {"analytics": False}})
    preview = 'query { page(slug: "deals", preview: {drafts: false}) { preview } }'
    async with gateway() as (client, services):
        response = await graphql(client, preview, headers=ADMIN)
        assert response.json()["data"]["page"]["preview"] is True
        await _hero(client, "v-private")
        await _hero(client, "v-counted")
        assert services.exposures is not None
        await services.exposures.flush()
    assert await db[EXPOSURES].distinct("visitorId") == ["v-counted"]


async def test_without_a_consent_record_the_default_analytics_consent_applies(
    gateway: Callable[..., Any], mongo: Mongo, database_name: str
) -> None:
    db = mongo[database_name]
    await db["profiles"].insert_one({"_id": "v-agreed", "consent": {"analytics": True}})
    async with gateway(default_analytics_consent=False) as (client, services):
        await _hero(client, "v-unknown")
        await _hero(client, "v-agreed")
        assert services.exposures is not None
        await services.exposures.flush()
    assert await db[EXPOSURES].distinct("visitorId") == ["v-agreed"]


async def test_every_served_page_is_logged_even_from_the_response_cache(
    gateway: Callable[..., Any], mongo: Mongo, database_name: str
) -> None:
    async with gateway(response_cache_size=16) as (client, services):
        await _hero(client, "v-same")
        await _hero(client, "v-same")
        assert services.exposures is not None
        await services.exposures.flush()
    exposures = mongo[database_name][EXPOSURES]
    assert await exposures.count_documents({"blocks.blockId": "deals-hero"}) == 2


async def test_a_full_queue_drops_and_counts(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name][EXPOSURES]
    log = ExposureLog(collection, max_queue=2, batch_size=10, flush_interval=0.01)
    dropped = _sample("tessera_exposures_dropped_total", {"cause": "queue_full"})
    log.record({"_id": str(i)} for i in range(5))
    assert _sample("tessera_exposures_dropped_total", {"cause": "queue_full"}) == dropped + 3
    await log.start()
    await log.aclose()
    assert await collection.count_documents({}) == 2


async def test_aclose_writes_everything_queued(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name][EXPOSURES]
    log = ExposureLog(collection, batch_size=7, flush_interval=10.0)
    await log.start()
    logged = _sample("tessera_exposures_logged_total")
    log.record({"_id": str(i)} for i in range(50))
    await log.aclose()
    assert await collection.count_documents({}) == 50
    assert _sample("tessera_exposures_logged_total") == logged + 50
    log.record([{"_id": "late"}])
    assert await collection.count_documents({}) == 50


async def test_a_refused_batch_is_dropped_and_counted(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name][EXPOSURES]
    await collection.insert_one({"_id": "taken"})
    log = ExposureLog(collection, flush_interval=0.01)
    await log.start()
    errors = _sample("tessera_exposures_dropped_total", {"cause": "error"})
    log.record([{"_id": "taken"}, {"_id": "new"}])
    await log.aclose()
    assert _sample("tessera_exposures_dropped_total", {"cause": "error"}) == errors + 1
    assert await collection.count_documents({}) == 2


async def test_writes_wait_while_profile_reads_are_slow(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name][EXPOSURES]
    busy = True
    log = ExposureLog(collection, flush_interval=0.01, defer_while=lambda: busy, max_defer=30)
    await log.start()
    deferred = _sample("tessera_exposure_writes_deferred_total")
    log.record([{"_id": "a"}, {"_id": "b"}])
    await asyncio.sleep(0.2)
    assert await collection.count_documents({}) == 0
    assert _sample("tessera_exposure_writes_deferred_total") > deferred
    busy = False
    await log.flush()
    assert await collection.count_documents({}) == 2
    await log.aclose()


async def test_a_held_batch_is_written_after_max_defer(mongo: Mongo, database_name: str) -> None:
    collection = mongo[database_name][EXPOSURES]
    log = ExposureLog(collection, flush_interval=0.01, defer_while=lambda: True, max_defer=0.1)
    await log.start()
    log.record([{"_id": "a"}])
    await asyncio.wait_for(log.flush(), timeout=5)
    assert await collection.count_documents({}) == 1
    await log.aclose()


class FlakyRegistry(ModelRegistry):
    """A real registry whose `active_version` raises an unexpected error a few times."""

    failures = 3
    calls = 0

    async def active_version(self, kind: str = "variant") -> str | None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("unexpected")
        return await super().active_version(kind)


async def test_the_watcher_survives_an_unexpected_error(
    mongo: Mongo, database_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = FlakyRegistry(mongo[database_name], KEY.encode())
    version = await _save(registry, fitted("story"))
    registry.failures = 0
    async with ModelServer(registry, budget=1.0, poll_seconds=POLL) as server:
        assert server.version is None
        with caplog.at_level("ERROR", logger="scoring.serving"):
            registry.failures = 3
            await ModelRegistry(mongo[database_name], KEY.encode()).activate(version)
            deadline = time.monotonic() + 10.0
            while server.version != version:
                assert time.monotonic() < deadline, "the watcher stopped"
                await asyncio.sleep(POLL / 2)
    said = [r for r in caplog.records if "RuntimeError: unexpected" in r.getMessage()]
    assert len(said) == 1  # once per problem, not once per poll
    assert said[0].exc_info is not None
