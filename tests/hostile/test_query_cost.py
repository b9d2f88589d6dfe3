"""Hostile GraphQL documents: refused fast and precisely, before validation walks them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import get_introspection_query, parse
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from resolvers.extensions.query_cost import QueryLimits, analyze
from resolvers.schema import build_schema
from tests.graphql_helpers import PAGE_QUERY, graphql

GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json"}


def fan_out(levels: int) -> str:
    """`levels` fragments, each spreading the next one twice: 2^levels paths."""
    fragments = "".join(
        f"fragment F{i} on Page {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels)
    )
    return f'{{ page(slug: "home") {{ ...F0 }} }}\n{fragments}fragment F{levels} on Page {{ slug }}'


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert response.json().get("data") is None
    return str(errors[0]["message"])


async def test_fragment_fan_out_is_refused_at_once_and_others_are_served(
    client: httpx.AsyncClient,
) -> None:
    query = fan_out(40)
    assert len(query) < 3000
    started = time.perf_counter()
    attack = asyncio.ensure_future(
        client.post("/graphql", json={"query": query}, headers=GRAPHQL_RESPONSE)
    )
    health = await asyncio.wait_for(client.get("/healthz"), timeout=10)
    response = await asyncio.wait_for(attack, timeout=10)
    assert health.status_code == 200
    message = refusal(response)
    assert "fields once fragments are expanded" in message
    assert "1099511627777" in message
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    # The old depth limiter needed 12 s for 22 levels and never finished 40.
    assert time.perf_counter() - started < 5


async def test_fragment_fan_out_over_get_is_refused(client: httpx.AsyncClient) -> None:
    response = await asyncio.wait_for(
        client.get("/graphql", params={"query": fan_out(40)}, headers=GRAPHQL_RESPONSE),
        timeout=10,
    )
    assert "fields once fragments are expanded" in refusal(response)


async def test_a_small_fan_out_still_runs(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": fan_out(3)})
    assert response.status_code == 200
    assert response.json()["data"]["page"]["slug"] == "home"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (aliases(1000, 'page(slug: "home") { slug }'), "more than 3000 tokens"),
        (aliases(200, 'page(slug: "home") { slug }'), "200 aliases; at most 30"),
        (aliases(100, "__schema { queryType { name } }"), "__schema or __type 100 times"),
        (aliases(3, "__schema { queryType { name } }"), "__schema or __type 3 times"),
        ("{ visitor { " + "id " * 20_000 + "} }", "more than 3000 tokens"),
        ("{ visitor { " + "id " * 600 + "} }", "selects 601 fields"),
        (
            "{ visitor { id " + "@include(if: true) " * 60 + "} }",
            "60 directives; at most 50",
        ),
        (
            '{ page(slug: "home") { blocks { ... on ProductGridBlock { products { sku '
            + "".join(f"a{i}: name " for i in range(40))
            + "} } } } }",
            "40 aliases",
        ),
    ],
    ids=[
        "page-aliases-1000",
        "page-aliases",
        "schema-aliases",
        "introspection-count",
        "tokens",
        "fields",
        "directives",
        "aliases-in-lists",
    ],
)
async def test_expensive_documents_are_refused(
    client: httpx.AsyncClient, query: str, expected: str
) -> None:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query}, headers=GRAPHQL_RESPONSE)
    assert expected in refusal(response)
    assert time.perf_counter() - started < 5


def test_list_cost_multiplies_what_a_list_selects() -> None:
    schema = build_schema()._schema
    one = '{ page(slug: "home") { blocks { id } } }'
    nested = (
        '{ page(slug: "home") { blocks { ... on ProductGridBlock '
        "{ products { sku name price currency } } } } }"
    )
    tight = QueryLimits(max_cost=100)
    assert analyze(schema, parse(one), tight) is None
    problem = analyze(schema, parse(nested), tight)
    assert problem is not None
    assert "estimated cost of 4" in problem  # 10 blocks x 10 products x 4 fields + the rest


def test_introspection_has_its_own_depth_bound() -> None:
    schema = build_schema()._schema
    standard = get_introspection_query(descriptions=True, input_value_deprecation=True)
    assert analyze(schema, parse(standard), QueryLimits()) is None
    deep = "{ __schema { types { " + "ofType { " * 20 + "name" + " }" * 20 + " } } }"
    problem = analyze(schema, parse(deep), QueryLimits())
    assert problem is not None
    assert "nests introspection 23 levels deep; at most 16" in problem


def test_cyclic_and_unknown_fragments_do_not_loop() -> None:
    schema = build_schema()._schema
    cyclic = (
        '{ page(slug: "home") { ...A } } fragment A on Page { slug ...B } '
        "fragment B on Page { title ...A ...Missing }"
    )
    assert analyze(schema, parse(cyclic), QueryLimits()) is None  # validation names the cycle


async def test_cyclic_fragments_get_the_validation_error(client: httpx.AsyncClient) -> None:
    cyclic = '{ page(slug: "home") { ...A } } fragment A on Page { slug ...A }'
    response = await client.post("/graphql", json={"query": cyclic}, headers=GRAPHQL_RESPONSE)
    assert "Cannot spread fragment 'A' within itself" in refusal(response)


async def test_the_demo_page_query_and_introspection_are_within_limits(
    client: httpx.AsyncClient,
) -> None:
    page = await graphql(client, PAGE_QUERY, {"slug": "home"})
    assert page.status_code == 200
    assert "errors" not in page.json()
    schema = await client.post("/graphql", json={"query": get_introspection_query(True)})
    assert schema.status_code == 200
    assert schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_every_page_or_visitor_alias_reads_the_profile_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    services = app.state.services
    reads: list[str] = []
    real_read = services.profiles.read

    async def counting_read(visitor_id: str) -> Any:
        reads.append(visitor_id)
        return await real_read(visitor_id)

    recorded: list[object] = []
    real_record = services.exposures.record

    def counting_record(documents: list[object]) -> None:
        recorded.extend(documents)
        real_record(documents)

    services.profiles.read = counting_read
    services.exposures.record = counting_record
    query = (
        "{ "
        + " ".join(f"v{i}: visitor {{ id audiences }}" for i in range(10))
        + " "
        + " ".join(f'p{i}: page(slug: "home") {{ blocks {{ variantId }} }}' for i in range(10))
        + ' other: page(slug: "sale") { slug } }'
    )
    response = await graphql(client, query, visitor="demo-vip")
    body = response.json()
    assert "errors" not in body, body
    assert reads == ["demo-vip"]
    # The same page with the same arguments is decided (and logged) once.
    pages = [document["page"] for document in recorded]  # type: ignore[index]
    assert sorted(pages) == ["home", "sale"]
    assert len({str(body["data"][f"p{i}"]) for i in range(10)}) == 1


async def test_another_visitor_stays_personalized_during_an_alias_flood(
    client: httpx.AsyncClient,
) -> None:
    flood = "{ " + " ".join(f"v{i}: visitor {{ id }}" for i in range(30)) + " }"
    attacks = [graphql(client, flood, visitor=f"attacker-{n}") for n in range(20)]
    victim = graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="demo-vip")
    *_, answer = await asyncio.gather(*attacks, victim)
    assert answer.json()["data"]["page"]["personalized"] is True


async def test_introspection_can_be_switched_off(settings: Settings, clock: Any) -> None:
    closed = settings.model_copy(update={"introspection": False})
    application = create_app(closed, clock=clock)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            refused = await client.post(
                "/graphql", json={"query": "{ __schema { queryType { name } } }"}
            )
            assert "introspection" in refused.json()["errors"][0]["message"].lower()
            typename = await client.post("/graphql", json={"query": "{ __typename }"})
            assert typename.json() == {"data": {"__typename": "Query"}}
            ide = await client.get("/graphql", headers={"Accept": "text/html"})
            assert ide.status_code == 404  # GraphiQL needs introspection
