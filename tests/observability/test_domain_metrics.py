"""Profile reads, decisions, MongoDB commands and CMS fetches on `/metrics`, from real traffic."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
from pymongo.errors import OperationFailure
from starlette.applications import Starlette

import blocks.preview
import blocks.selection
from delivery.metrics import REASONS, reason_label
from gateway.settings import Settings
from tests.cms.vendors import FakeStrapi
from tests.graphql_helpers import PAGE_QUERY, graphql, reasons
from tests.observability.helpers import gateway, moved, scrape

READS = "tessera_profile_reads_total"
READ_SECONDS = "tessera_profile_read_seconds_count"


async def page(client: httpx.AsyncClient, visitor: str, slug: str = "home") -> dict[str, Any]:
    response = await graphql(client, PAGE_QUERY, {"slug": slug}, visitor=visitor)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]["page"]
    return data


async def test_every_profile_read_outcome_is_exported_from_the_start(
    client: httpx.AsyncClient,
) -> None:
    samples = await scrape(client)
    for outcome in ("db", "near-cache", "stale", "fallback"):
        assert f"{READS}{{outcome={outcome}}}" in samples
        assert f"{READ_SECONDS}{{outcome={outcome}}}" in samples


async def test_a_profile_read_from_mongodb_counts_as_db(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await page(client, "demo-vip"))["personalized"] is True
    after = await scrape(client)
    assert moved(before, after, f"{READS}{{outcome=db}}") == 1
    assert moved(before, after, f"{READ_SECONDS}{{outcome=db}}") == 1
    assert moved(before, after, f"{READS}{{outcome=fallback}}") == 0


async def test_a_read_that_misses_its_budget_counts_as_fallback(settings: Settings) -> None:
    # A budget of a microsecond: no MongoDB round trip fits, so the page is unpersonalized.
    async with gateway(settings, profile_budget_ms=0.001) as client:
        before = await scrape(client)
        served = await page(client, "demo-vip")
        after = await scrape(client)
    assert served["personalized"] is False
    assert moved(before, after, f"{READS}{{outcome=fallback}}") == 1
    assert moved(before, after, f"{READ_SECONDS}{{outcome=fallback}}") == 1
    assert moved(before, after, f"{READS}{{outcome=db}}") == 0
    reasons_seen = set(reasons(served).values())
    assert reasons_seen == {"fallback:profile-unavailable"}
    assert moved(before, after, "tessera_decisions_total{reason=fallback:profile-unavailable}") == (
        len(served["blocks"])
    )


async def test_decisions_are_counted_by_bounded_reason(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    served = await page(client, "demo-vip")
    after = await scrape(client)
    expected: dict[str, int] = {}
    for reason in reasons(served).values():
        expected[reason_label(reason)] = expected.get(reason_label(reason), 0) + 1
    assert expected.get("audience", 0) >= 1  # the VIP's hero: audience:high_value
    for label, count in expected.items():
        assert moved(before, after, f"tessera_decisions_total{{reason={label}}}") == count
    # Audience names are editors' data: they never become labels.
    assert not any(k.startswith("tessera_decisions_total{reason=audience:") for k in after)


@pytest.mark.parametrize("module", [blocks.selection, blocks.preview])
def test_every_reason_blocks_can_give_has_its_own_label(module: object) -> None:
    constants = {
        value
        for name, value in inspect.getmembers(module)
        if (name.startswith("REASON_") or name.startswith("FALLBACK_")) and isinstance(value, str)
    }
    assert constants
    missing = constants - REASONS
    assert not missing, f"add {sorted(missing)} to delivery.metrics.REASONS"
    assert reason_label("audience:high_value+returning") == "audience"
    assert reason_label("something:new") == "other"


async def test_mongodb_commands_are_timed_by_name_and_outcome(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    before = await scrape(client)
    await page(client, "mongo-cmd-v")
    database = app.state.mongo[settings.mongodb_database]
    with pytest.raises(OperationFailure):
        await database.command("tesseraNoSuchCommand")
    with pytest.raises(OperationFailure):
        await database.command("collMod", "no_such_collection")
    after = await scrape(client)
    metric = "tessera_mongodb_command_seconds_count"
    assert moved(before, after, f"{metric}{{command=find,outcome=ok}}") >= 1
    assert moved(before, after, f"{metric}{{command=other,outcome=error}}") == 1
    assert moved(before, after, f"{metric}{{command=collMod,outcome=error}}") == 1
    assert not any("tesseraNoSuchCommand" in key for key in after)


async def test_cms_fetches_are_timed_by_outcome(client: httpx.AsyncClient) -> None:
    metric = "tessera_cms_fetch_seconds_count"
    before = await scrape(client)
    await page(client, "cms-v", slug="about")
    missing = await graphql(client, PAGE_QUERY, {"slug": "no-such-page"}, visitor="cms-v")
    assert missing.json()["data"]["page"] is None
    after = await scrape(client)
    # Each app has its own in-memory content cache: the first request fetches.
    assert moved(before, after, f"{metric}{{cms=filesystem,outcome=ok}}") == 1
    assert moved(before, after, f"{metric}{{cms=filesystem,outcome=not_found}}") == 1


async def test_a_failing_cms_fetch_counts_as_error(settings: Settings) -> None:
    vendor = FakeStrapi()
    metric = "tessera_cms_fetch_seconds_count{cms=strapi,outcome=error}"
    async with gateway(settings, adapter=vendor.adapter(), cms="strapi") as client:
        # Queued once started: start-up reads the product catalogue from the CMS too.
        vendor.failures.append(vendor.unauthorized())
        before = await scrape(client)
        response = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="cms-v")
        assert response.json()["data"]["page"] is None
        after = await scrape(client)
    assert moved(before, after, metric) == 1
