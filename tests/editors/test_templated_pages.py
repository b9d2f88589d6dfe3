"""Templated content over HTTP: per-visitor values never leak through the response cache."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient
from starlette.applications import Starlette

from blocks.templating import STATS
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock
from tests.editors.keys import PREVIEW
from tests.graphql_helpers import PAGE_QUERY, graphql


def _hero(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert "errors" not in body, body
    block: dict[str, object] = body["data"]["page"]["blocks"][1]
    assert block["blockId"] == "home-hero"
    return block


async def test_templated_fields_are_rendered_per_visitor_even_with_equal_decisions(
    client: httpx.AsyncClient,
    app: Starlette,
    mongo: AsyncMongoClient[dict[str, object]],
    database_name: str,
) -> None:
    profiles = mongo[database_name]["profiles"]
    for visitor, views in (("tpl-a", 5), ("tpl-b", 9)):
        await profiles.insert_one({"_id": visitor, "traits": {"pageViews": views}})
    first = _hero(await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="tpl-a"))
    second = _hero(await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="tpl-b"))
    again = _hero(await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="tpl-a"))
    assert first["variantId"] == second["variantId"] == "welcome-back"
    assert first["subheading"] == "Visit number 5: new arrivals since your last one."
    assert second["subheading"] == "Visit number 9: new arrivals since your last one."
    assert again == first
    cache = app.state.response_cache
    assert cache.hits == 1  # only tpl-a's own repeat


PAGE = """
slug: hello
title: Hello
blocks:
  - id: greeting
    type: banner
    variants:
      - id: default
        fields: {text: "Hi {{ visitor.__class__.__mro__ }}", tone: info}
        fallback: {text: Hello there}
"""


async def test_a_failing_template_shows_the_fallback_and_is_counted(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "hello.yaml").write_text(PAGE, encoding="utf-8")
    app = create_app(settings.model_copy(update={"content_dir": tmp_path}), clock=clock)
    before = STATS.failures
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await graphql(client, PAGE_QUERY, {"slug": "hello"}, visitor="v")
            [block] = response.json()["data"]["page"]["blocks"]
            assert block["text"] == "Hello there"
            assert STATS.failures == before + 1
            query = "{ contentHealth { errors findings { code path message } } }"
            health = (await graphql(client, query, headers=PREVIEW)).json()["data"]
            one = '{ contentHealth(slug: "hello") { errors } }'
            only = (await graphql(client, one, headers=PREVIEW)).json()["data"]
            assert only == {"contentHealth": {"errors": 1}}
            missing = '{ contentHealth(slug: "nope") { errors } }'
            body = (await graphql(client, missing, headers=PREVIEW)).json()
            assert body["errors"][0]["extensions"]["code"] == "PAGE_NOT_FOUND"
    assert health["contentHealth"]["errors"] == 1
    [finding] = health["contentHealth"]["findings"]
    assert finding["code"] == "template.unknown-field"
    assert finding["path"] == "blocks[0].variants[0].fields.text"
    assert "'visitor.__class__'" in finding["message"]


async def test_content_health_lists_findings_and_rules(client: httpx.AsyncClient) -> None:
    query = """
    { contentHealth { errors warnings findings { code path } rules { code severity } } }
    """
    denied = (await graphql(client, query)).json()
    assert denied["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = (await graphql(client, query, headers=PREVIEW)).json()
    health = body["data"]["contentHealth"]
    assert (health["errors"], health["warnings"], health["findings"]) == (0, 0, [])
    codes = {rule["code"]: rule["severity"] for rule in health["rules"]}
    assert codes["schema.typo"] == "ERROR"
    assert codes["variant.unreachable"] == "WARNING"
    drafts = await graphql(client, "{ contentHealth(drafts: true) { errors } }", headers=PREVIEW)
    assert drafts.json()["data"]["contentHealth"]["errors"] == 0
