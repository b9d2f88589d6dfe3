"""Segments end to end: the CLI, the registry, ingestion, targeting, `visitor`, preview, report."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from delivery.services import Services
from gateway.cli import main
from gateway.settings import Settings
from scoring.registry import SEGMENTS_MODEL, STATE
from tests.graphql_helpers import ADMIN, INGEST, graphql
from tests.segments.profiles import population

KEY = "segments-test-key"
POLL = 0.05
ROOT = Path(__file__).resolve().parents[2]
VISITOR = "{ visitor { audiences segment { id label } } }"
Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The gateway's settings, and the same database and key for the CLI."""
    assert settings.mongodb_uri is not None
    monkeypatch.setenv("MONGODB_URI", settings.mongodb_uri.get_secret_value())
    monkeypatch.setenv("MONGODB_DATABASE", settings.mongodb_database)
    monkeypatch.setenv("MODEL_SIGNING_KEY", KEY)
    monkeypatch.setenv("STATE_DIR", str(settings.state_dir))
    return settings.model_copy(
        update={
            "model_signing_key": SecretStr(KEY),
            "model_poll_seconds": POLL,
            "preview_tokens": SecretStr("preview-token"),
        }
    )


async def _cli(*argv: str) -> int:
    # The CLI runs its own event loop, as from a shell.
    return await asyncio.to_thread(main, list(argv))


async def _serving(services: Services, version: str | None) -> None:
    assert services.segments is not None
    deadline = time.monotonic() + 5.0
    while services.segments.version != version:
        assert time.monotonic() < deadline, f"still serving {services.segments.version}"
        await asyncio.sleep(POLL / 2)


async def _seed(mongo: Mongo, database_name: str) -> list[dict[str, Any]]:
    profiles = population(datetime.now(UTC))
    await mongo[database_name].profiles.insert_many(profiles)
    return profiles


def _version(out: str) -> str:
    found = re.search(r"segments (segments-\S+)", out)
    assert found, out
    return found.group(1)


async def test_train_activate_report_compare_and_roll_back(
    mongo: Mongo,
    database_name: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    database = mongo[database_name]
    await _seed(mongo, database_name)
    assert await _cli("segments", "train", "--k-range", "2:6") == 0
    out = capsys.readouterr().out
    first = _version(out)
    assert "180 profiles, k = 3 by silhouette" in out
    assert "activate it with: python -m gateway segments activate" in out
    assert await database[STATE].find_one({"_id": SEGMENTS_MODEL}) is None
    assert await database.profiles.count_documents({"segment": {"$exists": True}}) == 0

    assert await _cli("segments", "activate", first) == 0
    assert "180 profiles reassigned" in capsys.readouterr().out
    buyer = await database.profiles.find_one({"_id": "buyer-0000"})
    assert buyer["segment"]["version"] == first
    assert "mobile" in buyer["segment"]["label"]
    assert buyer["version"] == 2  # bumped: a concurrent ingestion retries on top of it

    chart = tmp_path / "segments.html"
    assert await _cli("segments", "report", "--chart", str(chart)) == 0
    report = capsys.readouterr().out
    assert f"segments {first}: k = 3, 180 live profiles" in report
    assert "drift since training: PSI 0.0000 (stable" in report
    assert "history (2 points):" in report
    assert "no other segmentation to compare with" in report
    assert f"chart: {chart}" in report
    html = chart.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "<script" not in html

    # A second run, another k: stability between the two runs.
    assert await _cli("segments", "train", "--k", "4", "--seed", "3", "--activate") == 0
    second = _version(capsys.readouterr().out)
    assert await _cli("segments", "report", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == second
    assert data["k"] == 4
    assert sum(s["size"] for s in data["segments"]) == 180
    assert all(s["holding"] == s["size"] for s in data["segments"])
    assert data["stability"]["against"] == first
    assert 0.5 < data["stability"]["adjustedRandIndex"] < 1.0
    assert set(data["segments"][0]["centroid"]) == set(data["segments"][0]["centroidZ"])

    assert await _cli("segments", "rollback") == 0
    assert f"rolled back: {first} is the active segmentation" in capsys.readouterr().out
    buyer = await database.profiles.find_one({"_id": "buyer-0000"})
    assert buyer["segment"]["version"] == first
    assert await _cli("segments", "rollback") == 0
    assert "no segmentation is active now (180 profiles cleared)" in capsys.readouterr().out
    assert await database.profiles.count_documents({"segment": {"$exists": True}}) == 0
    assert await _cli("segments", "report") == 1
    assert "no segmentation is active" in capsys.readouterr().err


async def test_drift_shows_when_visitors_change(
    mongo: Mongo,
    database_name: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = mongo[database_name]
    await _seed(mongo, database_name)
    monkeypatch.chdir(tmp_path)
    assert await _cli("segments", "train", "--k", "3", "--activate") == 0
    capsys.readouterr()
    # Every desktop browser moves to a phone and starts buying.
    await database.profiles.update_many(
        {"_id": {"$regex": "^browser"}},
        {"$set": {"traits.device": "mobile", "traits.orders": 6, "traits.ltv": 600.0}},
    )
    assert await _cli("segments", "report") == 0
    out = capsys.readouterr().out
    assert "DRIFTED: train again" in out
    assert (tmp_path / "segments-report.html").exists()


async def test_too_few_profiles_is_refused(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli("segments", "train") == 1
    assert "segments need at least 20" in capsys.readouterr().err


async def test_ingestion_assigns_segments_usable_in_targeting_visitor_and_preview(
    gateway: Callable[..., Any],
    mongo: Mongo,
    database_name: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _seed(mongo, database_name)
    assert await _cli("segments", "train", "--k", "3", "--activate") == 0
    version = _version(capsys.readouterr().out)
    buyer_label = (await mongo[database_name].profiles.find_one({"_id": "buyer-0001"}))["segment"][
        "label"
    ]
    async with gateway() as (client, services):
        await _serving(services, version)
        # A visitor Tessera never saw: their first events put them in a segment.
        phone = (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
        )
        events = [
            {
                "type": "page_view",
                "eventId": uuid.uuid4().hex,
                "visitorId": "newcomer",
                "context": {"userAgent": phone},
                "properties": {"category": "outdoor"},
            }
            for _ in range(40)
        ] + [
            {
                "type": "purchase",
                "eventId": uuid.uuid4().hex,
                "visitorId": "newcomer",
                "context": {"userAgent": phone},
                "properties": {"revenue": 120.0},
            }
            for _ in range(6)
        ]
        response = await client.post("/v1/events", json=events, headers=INGEST)
        assert response.status_code == 200, response.text
        stored = await mongo[database_name].profiles.find_one({"_id": "newcomer"})
        assert stored["segment"] == {
            "id": stored["segment"]["id"],
            "label": buyer_label,
            "version": version,
        }
        body = (await graphql(client, VISITOR, visitor="newcomer")).json()
        assert body["data"]["visitor"]["segment"] == {
            "id": stored["segment"]["id"],
            "label": buyer_label,
        }
        assert (await graphql(client, VISITOR, visitor="nobody")).json()["data"]["visitor"][
            "segment"
        ] is None

        # An audience over the learned segment.
        create = """mutation($a: AudienceInput!) { createAudience(audience: $a) { name } }"""
        audience = {"name": "learned_buyers", "condition": {"segment.label": buyer_label}}
        created = await graphql(client, create, {"a": audience}, headers=ADMIN)
        assert "errors" not in created.json(), created.json()
        body = (await graphql(client, VISITOR, visitor="newcomer")).json()
        assert "learned_buyers" in body["data"]["visitor"]["audiences"]
        body = (await graphql(client, VISITOR, visitor="browser-0001")).json()
        assert "learned_buyers" not in body["data"]["visitor"]["audiences"]


def _content(root: Path, label: str) -> Path:
    """A page whose hero targets the learned segment directly, in a condition."""
    page = {
        "slug": "seg",
        "title": "Segments",
        "blocks": [
            {
                "id": "seg-hero",
                "type": "hero",
                "variants": [
                    {"id": "default", "default": True, "fields": {"heading": "Hello"}},
                    {
                        "id": "for-segment",
                        "priority": 10,
                        "condition": {"segment.label": label},
                        "fields": {"heading": "Picked for {{ visitor.segment.label }}"},
                    },
                ],
            }
        ],
    }
    (root / "pages").mkdir(parents=True)
    (root / "pages" / "seg.yaml").write_text(yaml.safe_dump(page), encoding="utf-8")
    return root


async def test_conditions_on_the_segment_and_previews(
    gateway: Callable[..., Any],
    mongo: Mongo,
    database_name: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    await _seed(mongo, database_name)
    assert await _cli("segments", "train", "--k", "3", "--activate") == 0
    version = _version(capsys.readouterr().out)
    label = (await mongo[database_name].profiles.find_one({"_id": "carter-0002"}))["segment"][
        "label"
    ]
    query = '{ page(slug: "seg") { cacheScope blocks { variantId ... on HeroBlock { heading } } } }'
    async with gateway(content_dir=_content(tmp_path / "content", label)) as (client, services):
        await _serving(services, version)
        body = (await graphql(client, query, visitor="carter-0002")).json()
        page = body["data"]["page"]
        assert page["blocks"][0]["variantId"] == "for-segment"
        assert page["blocks"][0]["heading"] == f"Picked for {label}"
        other = (await graphql(client, query, visitor="buyer-0002")).json()["data"]["page"]
        assert other["blocks"][0]["variantId"] == "default"
        # A condition on the visitor's own segment: like any profile attribute, never
        # shared (an audience over the segment is: its membership is an edge fact).
        assert other["cacheScope"] == "PRIVATE"

        preview = (
            '{ page(slug: "seg", preview: {segment: "%s", drafts: false}) '
            "{ preview blocks { variantId } } }"
        )
        headers = {"Authorization": "Bearer preview-token"}
        body = (await graphql(client, preview % label, headers=headers)).json()
        assert body["data"]["page"]["blocks"][0]["variantId"] == "for-segment"
        body = (await graphql(client, preview % "1", headers=headers)).json()
        assert "errors" not in body
        body = (await graphql(client, preview % "nope", headers=headers)).json()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"].startswith("preview.segment: no segment 'nope'; segments: ")
        assert repr(label) in error["message"]


def _demo_traffic() -> Any:
    spec = importlib.util.spec_from_file_location(
        "demo_traffic", ROOT / "scripts" / "demo_traffic.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_segments_appear_in_the_demo_after_demo_traffic_and_training(
    gateway: Callable[..., Any], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = _demo_traffic()
    from cms_adapters.filesystem import FilesystemAdapter
    from gateway.settings import DEMO_CONTENT_DIR
    from scoring.recommendations.synthetic import make_world
    from tests.graphql_helpers import PUBLISHABLE_KEY

    catalog = await FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog()
    world = make_world(catalog, random.Random(1))
    rng = random.Random(2)
    async with gateway() as (client, services):
        visitors = []
        for _ in range(60):
            await traffic.visit(client, PUBLISHABLE_KEY, rng, world)
        async for doc in services.store.collection.find({"_id": {"$regex": "^demo-traffic-"}}):
            visitors.append(doc["_id"])
        assert len(visitors) == 60
        assert await _cli("segments", "train", "--activate") == 0
        out = capsys.readouterr().out
        version = _version(out)
        await _serving(services, version)
        labels = set()
        deadline = time.monotonic() + 5
        for visitor in visitors:
            while True:
                body = (await graphql(client, VISITOR, visitor=visitor)).json()
                segment = body["data"]["visitor"]["segment"]
                # The near-cache follows the profiles' change stream: a moment at most.
                if segment is not None or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert segment is not None, visitor
            labels.add(segment["label"])
        assert len(labels) >= 2
        assert all(re.fullmatch(r"[a-z-]+( · [a-z-]+)*( #\d+)?", label) for label in labels)
