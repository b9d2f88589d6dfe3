"""`/metrics`: the counters Tessera keeps, scraped in Prometheus text format."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from blocks.conditions import compile_condition
from tests.graphql_helpers import PAGE_QUERY, graphql


async def _scrape(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_page_cache_and_content_counters_move_with_traffic(
    client: httpx.AsyncClient,
) -> None:
    before = await _scrape(client)
    for _ in range(2):
        response = await graphql(client, PAGE_QUERY, {"slug": "about"}, visitor="metrics-v")
        assert response.status_code == 200
    after = await _scrape(client)
    assert after["tessera_page_cache_hits_total"] == before["tessera_page_cache_hits_total"] + 1
    assert after["tessera_page_cache_misses_total"] >= before["tessera_page_cache_misses_total"] + 1
    upstream = "tessera_content_cache_upstream_calls_total{cms=filesystem}"
    assert after[upstream] >= 1
    assert after["tessera_profile_reader_degraded"] == 0


async def test_malformed_condition_evaluations_are_counted(client: httpx.AsyncClient) -> None:
    before = await _scrape(client)
    condition = compile_condition({"traits.orders": {"$bogus": 1}})
    assert condition.matches({"traits": {"orders": 1}}) is False
    after = await _scrape(client)
    assert after["tessera_conditions_malformed_total"] == (
        before["tessera_conditions_malformed_total"] + 1
    )
    assert "tessera_exposures_logged_total" in after
