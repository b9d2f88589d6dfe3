"""`/graphql` durations per operation name, with the client-chosen names bounded."""

from __future__ import annotations

import httpx

from gateway.settings import Settings
from tests.observability.helpers import gateway, moved, scrape

OPERATION = "tessera_graphql_operation_duration_seconds_count"


def operation(name: str, kind: str = "query") -> str:
    return f"{OPERATION}{{operation={name},type={kind}}}"


async def post(client: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    return await client.post("/graphql", json=body, headers={"X-Visitor-Id": "ops-v"})


async def test_operations_are_timed_under_their_name(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (
        await post(client, {"query": 'query HomeTitle { page(slug: "home") { title } }'})
    ).status_code == 200
    assert (await post(client, {"query": '{ page(slug: "home") { title } }'})).status_code == 200
    # operationName picks one of several: the chosen one is the label.
    two = "query First { __typename } query Second { __typename }"
    assert (await post(client, {"query": two, "operationName": "Second"})).status_code == 200
    mutation = "mutation Track { track(event: {type: PAGE_VIEW}) { visitor { id } } }"
    assert (await post(client, {"query": mutation})).status_code == 200
    # Refused before an operation is chosen: bad JSON, a syntax error, an ambiguous document.
    bad = await client.post("/graphql", content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert (await post(client, {"query": "query Broken {"})).status_code == 200
    assert (await post(client, {"query": two})).status_code == 200
    after = await scrape(client)
    assert moved(before, after, operation("HomeTitle")) == 1
    assert moved(before, after, operation("anonymous")) == 1
    assert moved(before, after, operation("Second")) == 1
    assert moved(before, after, operation("First")) == 0
    assert moved(before, after, operation("Track", "mutation")) == 1
    assert moved(before, after, operation("none", "none")) == 3


async def test_names_beyond_the_first_n_are_other(settings: Settings) -> None:
    async with gateway(settings, metrics_operation_names=2) as client:
        before = await scrape(client)
        for name in ("Alpha", "Beta", "Gamma", "Delta", "Alpha", "L" + "o" * 64):
            response = await post(client, {"query": f"query {name} {{ __typename }}"})
            assert response.status_code == 200
        after = await scrape(client)
    assert moved(before, after, operation("Alpha")) == 2
    assert moved(before, after, operation("Beta")) == 1
    assert moved(before, after, operation("Gamma")) == 0
    assert moved(before, after, operation("other")) == 3  # Gamma, Delta, the 65-character name
    names = {key for key in after if key.startswith(OPERATION)}
    assert not any("Gamma" in key or "Delta" in key or "Looo" in key for key in names)


async def test_a_flood_of_invented_names_cannot_grow_the_label_set(settings: Settings) -> None:
    async with gateway(settings, metrics_operation_names=5) as client:
        before = await scrape(client)
        for index in range(40):
            await post(client, {"query": f"query Flood{index} {{ __typename }}"})
        after = await scrape(client)
    new = [k for k in after if k.startswith(OPERATION) and k not in before]
    assert len(new) <= 5 + 1  # five names, and other
    assert moved(before, after, operation("other")) == 35
