"""Request ids and request durations per route template, through the real app."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.logs import RequestIdFilter
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import PAGE_QUERY, graphql
from tests.observability.helpers import moved, scrape

DURATION = "tessera_http_request_duration_seconds_count"
GENERATED = re.compile(r"[0-9a-f]{32}")


def duration(route: str, method: str, status: int) -> str:
    return f"{DURATION}{{method={method},route={route},status={status}}}"


async def test_durations_are_labelled_by_route_template_never_by_raw_path(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    assert (await client.post("/webhooks/filesystem", content=b"{}")).status_code == 401
    assert (await client.post("/webhooks/contentful", content=b"{}")).status_code == 404
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.request("BREW", "/healthz")).status_code == 405
    response = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="route-v")
    assert response.status_code == 200
    after = await scrape(client)
    assert moved(before, after, duration("/webhooks/{cms}", "POST", 401)) == 1
    assert moved(before, after, duration("/webhooks/{cms}", "POST", 404)) == 1
    assert moved(before, after, duration("unmatched", "GET", 404)) == 1
    assert moved(before, after, duration("/healthz", "other", 405)) == 1
    assert moved(before, after, duration("/graphql", "POST", 200)) == 1
    # The scrape itself is timed once it has answered.
    assert after[duration("/metrics", "GET", 200)] >= 1
    for key in after:
        if key.startswith("tessera_http_request_duration_seconds"):
            assert "/webhooks/filesystem" not in key, key
            assert "/no/such" not in key, key


async def test_refused_requests_are_timed_under_their_route(settings: Settings) -> None:
    changes = {"rate_limit_webhooks_ip_burst": 1, "rate_limit_webhooks_ip_rate": 0.01}
    application = create_app(settings.model_copy(update=changes), clock=Clock())
    async with LifespanManager(application) as manager:
        # From an address that is not exempt: the second webhook is over budget.
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as outsider:
            before = await scrape(outsider)
            statuses = [
                (await outsider.post("/webhooks/filesystem", content=b"{}")).status_code
                for _ in range(3)
            ]
            after = await scrape(outsider)
    assert statuses == [401, 429, 429]
    assert moved(before, after, duration("/webhooks/{cms}", "POST", 429)) == 2
    assert moved(before, after, duration("/webhooks/{cms}", "POST", 401)) == 1


async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    for request_id in ("abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "Root=1-5e1b:a/b+c@d_e.f"):
        response = await client.get("/healthz", headers={"X-Request-Id": request_id})
        assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "hostile",
    [b"a" * 129, b"", b"two words", b'quote"d', b"back\\slash", b"<script>", "caf\u00e9".encode()],
)
async def test_an_unsafe_request_id_is_replaced_by_a_generated_one(
    client: httpx.AsyncClient, hostile: bytes
) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": hostile})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_each_request_without_an_id_gets_its_own(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(GENERATED.fullmatch(i) for i in ids)
    # Every route answers with one, errors and GraphQL included.
    response = await client.post(
        "/graphql", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert GENERATED.fullmatch(response.headers["x-request-id"])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


async def test_records_logged_while_handling_a_request_carry_its_id(
    client: httpx.AsyncClient, records: Records
) -> None:
    # A forged webhook is refused with a warning, logged inside the request.
    response = await client.post(
        "/webhooks/filesystem", content=b"{}", headers={"X-Request-Id": "forged-1"}
    )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "forged-1"
    logged = [r for r in records.records if r.name == "gateway.webhooks"]
    assert logged
    assert all(getattr(r, "request_id", None) == "forged-1" for r in logged)
    logging.getLogger("gateway.test").warning("outside any request")
    assert getattr(records.records[-1], "request_id", None) == "-"
