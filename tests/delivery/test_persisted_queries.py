"""Apollo's persisted-query protocol, trusted documents, and GraphiQL only for browsers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from cms_adapters.cache_backend import close_cache, open_cache
from gateway.app import create_app
from gateway.persisted_queries import MemoryQueryStore, SharedQueryStore, load_manifest
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import ADMIN

QUERY = 'query About { page(slug: "about") { slug title } }'
HASH = hashlib.sha256(QUERY.encode()).hexdigest()
Gateway = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def extensions(digest: str = HASH) -> str:
    return json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})


@pytest.fixture
def gateway(settings: Settings, clock: Clock) -> Gateway:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(settings.model_copy(update=overrides), clock=clock)
        async with LifespanManager(application) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client

    return start


async def test_apollo_flow_over_get(client: httpx.AsyncClient) -> None:
    params = {"extensions": extensions(), "operationName": "About"}
    unknown = await client.get("/graphql", params=params, headers={"Accept": "*/*"})
    assert unknown.status_code == 200
    assert unknown.headers["content-type"].startswith("application/json")
    error = unknown.json()["errors"][0]
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert unknown.headers["cache-control"] == "private, no-store"
    # Apollo retries with the query (GET too, useGETForHashedQueries), which registers it.
    full = await client.get("/graphql", params={**params, "query": QUERY})
    assert full.json()["data"]["page"]["slug"] == "about"
    known = await client.get("/graphql", params=params)
    assert known.json() == full.json()
    assert known.headers["x-tessera-cache-scope"] == "public"


async def test_apollo_flow_over_post(client: httpx.AsyncClient) -> None:
    body = {"extensions": json.loads(extensions()), "operationName": "About"}
    unknown = await client.post("/graphql", json=body)
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    full = await client.post("/graphql", json={**body, "query": QUERY})
    assert full.json()["data"]["page"]["slug"] == "about"
    assert (await client.post("/graphql", json=body)).json() == full.json()


async def test_a_query_with_a_wrong_hash_is_refused(client: httpx.AsyncClient) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    response = await client.post(
        "/graphql", json={"query": QUERY, "extensions": json.loads(extensions(wrong))}
    )
    assert response.status_code == 400
    assert "does not match the query" in response.json()["errors"][0]["message"]
    # Nothing was registered under the wrong hash.
    lookup = await client.get("/graphql", params={"extensions": extensions(wrong)})
    assert lookup.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        ({"persistedQuery": {"version": 2, "sha256Hash": HASH}}, "only version 1"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}, "64-character"),
        ({"persistedQuery": "yes"}, "must be an object"),
    ],
)
async def test_malformed_persisted_query_extensions(
    client: httpx.AsyncClient, extension: dict[str, Any], expected: str
) -> None:
    response = await client.get("/graphql", params={"extensions": json.dumps(extension)})
    assert response.status_code == 400
    assert expected in response.json()["errors"][0]["message"]


async def test_an_invalid_query_is_not_registered(client: httpx.AsyncClient) -> None:
    bad = "{ nope }"
    digest = hashlib.sha256(bad.encode()).hexdigest()
    first = await client.post(
        "/graphql", json={"query": bad, "extensions": json.loads(extensions(digest))}
    )
    assert "Cannot query field 'nope'" in first.json()["errors"][0]["message"]
    again = await client.get("/graphql", params={"extensions": extensions(digest)})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_graphiql_only_for_browsers_asking_for_html(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    for accept in ("*/*", "application/json"):
        hashed = await client.get(
            "/graphql", params={"extensions": extensions()}, headers={"Accept": accept}
        )
        assert "errors" in hashed.json()
    html_with_query = await client.get(
        "/graphql", params={"extensions": extensions()}, headers={"Accept": "text/html"}
    )
    assert html_with_query.headers["content-type"].startswith("application/json")
    nothing = await client.get("/graphql", headers={"Accept": "application/json"})
    assert nothing.status_code == 400
    assert "No GraphQL query" in nothing.json()["errors"][0]["message"]


async def test_registrations_are_shared_through_redis(gateway: Gateway, redis_url: str) -> None:
    query = 'query Shared { page(slug: "about") { title } }'
    digest = hashlib.sha256(query.encode()).hexdigest()
    body = {"query": query, "extensions": json.loads(extensions(digest))}
    async with gateway(cache_url=redis_url) as one, gateway(cache_url=redis_url) as two:
        assert (await one.post("/graphql", json=body)).json()["data"]["page"]["title"]
        other = await two.get("/graphql", params={"extensions": extensions(digest)})
        assert other.json()["data"]["page"]["title"] == "About Trailhead Outfitters"


@pytest.mark.parametrize("form", ["codegen", "codegen-prefixed", "apollo"])
async def test_trusted_documents(gateway: Gateway, tmp_path: Path, form: str) -> None:
    manifest = tmp_path / "persisted-documents.json"
    if form == "codegen":
        manifest.write_text(json.dumps({HASH: QUERY}))
    elif form == "codegen-prefixed":
        # GraphQL Code Generator 6 with `hashAlgorithm: "sha256"` writes the
        # GraphQL-over-HTTP document identifier: `sha256:<hex>`.
        manifest.write_text(json.dumps({f"sha256:{HASH}": QUERY}))
    else:
        operation = {"id": HASH, "name": "About", "type": "query", "body": QUERY}
        manifest.write_text(
            json.dumps(
                {
                    "format": "apollo-persisted-query-manifest",
                    "version": 1,
                    "operations": [operation],
                }
            )
        )
    async with gateway(persisted_queries="trusted", persisted_queries_manifest=manifest) as client:
        by_hash = await client.get("/graphql", params={"extensions": extensions()})
        assert by_hash.json()["data"]["page"]["slug"] == "about"
        same_text = await client.post("/graphql", json={"query": QUERY})
        assert same_text.json()["data"]["page"]["slug"] == "about"
        other = await client.post("/graphql", json={"query": "{ __typename }"})
        assert other.status_code == 400
        assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        unknown = await client.get("/graphql", params={"extensions": extensions("f" * 64)})
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        admin = await client.post("/graphql", json={"query": "{ __typename }"}, headers=ADMIN)
        assert admin.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (hashlib.sha1(QUERY.encode()).hexdigest(), "not a SHA-256"),  # codegen's default
        ("sha1:" + hashlib.sha1(QUERY.encode()).hexdigest(), "not a SHA-256"),
        ("About", "not a SHA-256"),
    ],
)
def test_a_manifest_keyed_by_anything_but_sha256_is_refused(
    tmp_path: Path, key: str, problem: str
) -> None:
    # No client could ever send such a key (APQ hashes are SHA-256): refuse it at start-up.
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({key: QUERY}))
    with pytest.raises(ValueError, match=problem) as refused:
        load_manifest(manifest)
    assert "hashAlgorithm" in str(refused.value)


async def test_trusted_mode_needs_a_manifest(settings: Settings, clock: Clock) -> None:
    with pytest.raises(ValueError, match="PERSISTED_QUERIES_MANIFEST"):
        create_app(settings.model_copy(update={"persisted_queries": "trusted"}), clock=clock)


async def test_persisted_queries_off(gateway: Gateway) -> None:
    async with gateway(persisted_queries="off") as client:
        response = await client.get("/graphql", params={"extensions": extensions()})
        assert response.json()["errors"][0]["message"] == "PersistedQueryNotSupported"
        plain = await client.post("/graphql", json={"query": QUERY})
        assert plain.json()["data"]["page"]["slug"] == "about"


async def test_the_process_store_is_bounded_by_characters_too() -> None:
    store = MemoryQueryStore(maxsize=100, max_chars=1_000)
    for n in range(5):
        await store.set(f"{n:064x}", "q" * 300)
    # 5 queries of 300 characters in 1,000: the two oldest went.
    assert len(store) == 3
    assert await store.get(f"{0:064x}") is None
    assert await store.get(f"{4:064x}") == "q" * 300
    await store.set(f"{4:064x}", "short")  # registered again: its old text no longer counts
    await store.set(f"{5:064x}", "q" * 300)
    assert len(store) == 4  # 300 + 300 + 5 + 300 characters


async def test_a_hash_looked_up_in_redis_is_then_known_without_it(redis_url: str) -> None:
    backend = open_cache(redis_url)
    registering, other = SharedQueryStore(backend), SharedQueryStore(backend)
    await registering.set(HASH, QUERY)
    assert await other.get(HASH) == QUERY  # from Redis: another replica registered it

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    backend.get = down
    assert await other.get(HASH) == QUERY  # now from the process
    assert await SharedQueryStore(backend).get(HASH) is None  # a replica that never saw it
    await close_cache(backend)
