"""Malformed requests at every entry point: a precise 4xx, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from gateway.settings import Settings
from tests.graphql_helpers import INGEST, PAGE_QUERY

WEBHOOK_SECRET = "hook-secret"
DEEP = b"[" * 100_000 + b"]" * 100_000
# Within /graphql's 64 KiB body limit.
DEEP_GRAPHQL = b"[" * 30_000 + b"]" * 30_000
DEEP_GRAPHQL_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"cms_webhook_secret": SecretStr(WEBHOOK_SECRET)})


def body(query: str = "{ __typename }", **extra: object) -> bytes:
    return json.dumps({"query": query, **extra}).encode()


JSON = {"Content-Type": "application/json"}

GRAPHQL_CASES = {
    "deep-array": (DEEP_GRAPHQL, "nested too deeply"),
    "deep-object": (DEEP_GRAPHQL_OBJECT, "nested too deeply"),
    "deep-variables": (
        b'{"query": "{ __typename }", "variables": {"x": ' + DEEP_GRAPHQL + b"}}",
        "nested too deeply",
    ),
    "null": (b"null", "must be a JSON object"),
    "number": (b"42", "must be a JSON object"),
    "array": (b"[]", "must be a JSON object"),
    "utf-16": (body().decode().encode("utf-16"), "not UTF-8"),
    "infinity": (b'{"query": "{ __typename }", "variables": {"x": 1e999999}}', "too large"),
    "nan": (b'{"query": "{ __typename }", "variables": {"x": NaN}}', "NaN is not a JSON number"),
    "lone-surrogate": (b'{"query": "{ __typename }", "x": "\\ud800"}', "lone UTF-16 surrogate"),
    "bad-json": (b'{"query": ', "Unable to parse"),
    "5000-digits": (
        b'{"query": "{ __typename }", "variables": {"x": ' + b"9" * 5000 + b"}}",
        "a number has more than 4300 digits",
    ),
}


@pytest.mark.parametrize("case", GRAPHQL_CASES)
async def test_graphql_post_bodies(client: httpx.AsyncClient, case: str) -> None:
    content, expected = GRAPHQL_CASES[case]
    response = await client.post("/graphql", content=content, headers=JSON)
    assert response.status_code == 400, response.text
    assert expected in response.text


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        ('{"x": 1e999999}', "too large"),
        ('{"x": "\\udfff"}', "lone UTF-16 surrogate"),
    ],
)
async def test_graphql_get_variables(
    client: httpx.AsyncClient, variables: str, expected: str
) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }", "variables": variables}
    )
    assert response.status_code == 400, response.text
    assert expected in response.text


async def test_graphql_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    padding = "x" * 70_000
    response = await client.post("/graphql", content=body(padding), headers=JSON)
    assert response.status_code == 413
    assert "larger than 65536 bytes" in response.json()["errors"][0]["message"]


async def test_graphql_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def endless() -> object:
        for _ in range(1000):
            yield b" " * 1024

    response = await client.post("/graphql", content=endless(), headers=JSON)  # type: ignore[arg-type]
    assert response.status_code == 413


async def test_huge_integers_are_a_graphql_error_not_a_crash(client: httpx.AsyncClient) -> None:
    query = "query($n: String!) { page(slug: $n) { slug } }"
    response = await client.post(
        "/graphql", content=body(query, variables={"n": 2**70}), headers=JSON
    )
    assert response.status_code == 200
    assert "String cannot represent a non string value" in response.json()["errors"][0]["message"]


async def test_a_valid_request_still_works(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=body(PAGE_QUERY, variables={"slug": "home"}), headers=JSON
    )
    assert response.status_code == 200
    assert response.json()["data"]["page"]["slug"] == "home"


EVENT_CASES = {
    "deep": (DEEP, "nested too deeply"),
    "deep-object": (DEEP_OBJECT, "nested too deeply"),
    # Values are checked per event (the others in a batch are kept): a 400 naming it.
    "infinity": (b'[{"type": "page_view", "properties": {"x": 1e999999}}]', "finite number"),
    "nan": (b'[{"type": "page_view", "properties": {"x": NaN}}]', "finite number"),
    "utf-16": ('[{"type": "page_view"}]'.encode("utf-16"), "not UTF-8"),
    "surrogate": (b'[{"type": "page_view", "properties": {"x": "\\ud800"}}]', "surrogate"),
}


@pytest.mark.parametrize("case", EVENT_CASES)
@pytest.mark.parametrize("authorized", [True, False], ids=["with-key", "without-key"])
async def test_event_bodies(client: httpx.AsyncClient, case: str, authorized: bool) -> None:
    content, expected = EVENT_CASES[case]
    headers = {**JSON, **(INGEST if authorized else {})}
    response = await client.post("/v1/events", content=content, headers=headers)
    if authorized:
        assert response.status_code == 400, response.text
        assert expected in response.text
    else:
        assert response.status_code == 401  # an anonymous caller learns nothing of the body


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (DEEP_OBJECT, "nested too deeply"),
        (b'{"pages": ["\\ud800"]}', "surrogate"),
        (b'{"pages": [1e999999]}', "too large"),
        (b"null", "must be a JSON object"),
    ],
)
async def test_webhook_bodies_with_a_valid_secret(
    client: httpx.AsyncClient, content: bytes, expected: str
) -> None:
    response = await client.post(
        "/webhooks/filesystem",
        content=content,
        headers={**JSON, "Authorization": f"Bearer {WEBHOOK_SECRET}"},
    )
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]


GRAPHQL_JSON_RESPONSE = {**JSON, "Accept": "application/graphql-response+json"}
LONG_SLUGS = {"long": "a" * 60_000, "long-segment": "a" * 256, "many-segments": "a/" * 3000 + "a"}


@pytest.mark.parametrize("slug", LONG_SLUGS.values(), ids=list(LONG_SLUGS))
async def test_a_slug_longer_than_any_page_is_bad_user_input(
    client: httpx.AsyncClient, slug: str
) -> None:
    query = "query($s: String!) { page(slug: $s) { title } }"
    response = await client.post(
        "/graphql", content=body(query, variables={"s": slug}), headers=JSON
    )
    assert response.status_code == 200, response.text
    error = response.json()["errors"][0]
    if len(slug) > 512:
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert f"slug: at most 512 characters, got {len(slug)}." == error["message"]
    else:  # no file can have that name: no page has it
        assert error["extensions"]["code"] == "PAGE_NOT_FOUND"


@pytest.mark.parametrize(
    ("document", "name", "expected"),
    [
        ("query A { __typename }", "B", "Unknown operation named 'B'."),
        ("query A { __typename }", "B\n" * 100, "Unknown operation named"),
        (
            "query A { __typename } query B { __typename }",
            None,
            "Must provide operation name if query contains multiple operations.",
        ),
        ("fragment F on Query { __typename }", None, "Must provide an operation."),
        ("subscription S { __typename }", None, "This gateway serves no subscriptions."),
    ],
    ids=["unknown-name", "long-name", "two-unnamed", "no-operation", "subscription"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_document_without_one_operation_to_run_is_a_request_error(
    client: httpx.AsyncClient, document: str, name: str | None, expected: str, method: str
) -> None:
    if method == "POST":
        response = await client.post(
            "/graphql", content=body(document, operationName=name), headers=GRAPHQL_JSON_RESPONSE
        )
    else:
        params = {"query": document, **({"operationName": name} if name else {})}
        response = await client.get("/graphql", params=params, headers=GRAPHQL_JSON_RESPONSE)
    assert response.status_code == 400, response.text
    assert expected in response.json()["errors"][0]["message"]
    assert "data" not in response.json()
    assert response.headers["cache-control"] == "private, no-store"
