"""Rate limits through the whole gateway, with buckets in memory and in Redis alike."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.graphql_helpers import ADMIN_KEY, PUBLISHABLE_KEY
from tests.ratelimit.conftest import Gateway, GatewayFactory

# A private answer: publicly cacheable ones carry no RateLimit headers (see ratelimit.py).
TYPENAME = {"query": "{ __typename visitor { known } }"}
# One token per 100 s: nothing refills while a test runs, so counts are exact.
SLOW = 0.01


@pytest.fixture
def limited(gateway: GatewayFactory, cache_url: str) -> GatewayFactory:
    """The gateway factory, on this test's bucket store (memory or Redis)."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[Gateway]:
        return gateway(cache_url=cache_url, **overrides)

    return start


async def post_graphql(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/graphql", json=TYPENAME, headers=headers)


def rate_limited_total(route: str, scope: str) -> float:
    value = REGISTRY.get_sample_value(
        "tessera_rate_limited_total", {"route": route, "scope": scope}
    )
    return value or 0.0


async def test_graphql_burst_then_429_with_retry_after(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_graphql_ip_rate=SLOW, rate_limit_graphql_ip_burst=3) as gw,
        gw.client() as client,
    ):
        remaining = []
        for _ in range(3):
            response = await post_graphql(client)
            assert response.status_code == 200, response.text
            assert response.json() == {"data": {"__typename": "Query", "visitor": {"known": False}}}
            remaining.append(response.headers["RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        assert response.headers["RateLimit-Limit"] == "3"

        refused = await post_graphql(client)
    assert refused.status_code == 429
    # The next token refills in 100 s (less the few ms the test took), rounded up.
    assert refused.headers["Retry-After"] == "100"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.headers["content-type"].startswith("application/json")
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 100, "scope": "ip"}
    assert error["message"] == (
        "Too many requests to /graphql from this client IP address: the limit is "
        "0.01 requests per second with bursts of up to 3. Retry after 100 s."
    )


async def test_events_and_webhooks_answer_in_their_own_error_shape(
    limited: GatewayFactory,
) -> None:
    async with (
        limited(
            rate_limit_events_ip_rate=SLOW,
            rate_limit_events_ip_burst=2,
            rate_limit_webhooks_ip_rate=SLOW,
            rate_limit_webhooks_ip_burst=2,
        ) as gw,
        gw.client() as client,
    ):
        events = [
            await client.post("/v1/events", content=b"[]", headers={"Authorization": "Bearer x"})
            for _ in range(3)
        ]
        hooks = [await client.post("/webhooks/filesystem", content=b"{}") for _ in range(3)]
    # Refused before the key or the signature is even looked at.
    assert [r.status_code for r in events] == [401, 401, 429]
    assert [r.status_code for r in hooks] == [401, 401, 429]
    assert events[2].json() == {
        "error": "Too many requests to /v1/events from this client IP address: the limit is "
        "0.01 requests per second with bursts of up to 2. Retry after 100 s."
    }
    assert events[2].headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in events[2].headers["Access-Control-Expose-Headers"]
    assert events[2].headers["Retry-After"] == "100"
    assert hooks[2].json()["error"].startswith("Too many requests to /webhooks from this client")
    assert hooks[2].headers["Retry-After"] == "100"


async def test_route_families_and_clients_have_separate_budgets(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_graphql_ip_rate=SLOW, rate_limit_graphql_ip_burst=1) as gw,
        gw.client("198.51.100.1") as flooder,
        gw.client("198.51.100.2") as neighbour,
    ):
        assert (await post_graphql(flooder)).status_code == 200
        for _ in range(20):
            assert (await post_graphql(flooder)).status_code == 429
        # The same client's other route families, and other clients, are untouched.
        assert (await flooder.post("/v1/events", content=b"[]")).status_code == 401
        assert (await flooder.post("/webhooks/filesystem", content=b"{}")).status_code == 401
        assert (await post_graphql(neighbour)).status_code == 200


async def test_an_api_key_has_one_budget_across_ips(limited: GatewayFactory) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        limited(rate_limit_graphql_key_rate=SLOW, rate_limit_graphql_key_burst=3) as gw,
        gw.client("198.51.100.1") as a,
        gw.client("198.51.100.2") as b,
        gw.client("198.51.100.3") as c,
    ):
        statuses = [(await post_graphql(x, **admin)).status_code for x in (a, b, c, a)]
        refused = await post_graphql(b, **admin)
        # Without the key, each IP still has its own (large) budget.
        anonymous = await post_graphql(b)
        # Made-up keys get no bucket of their own (so cannot mint fresh budgets).
        made_up = [
            (await post_graphql(c, Authorization=f"Bearer made-up-{n}")).status_code
            for n in range(5)
        ]
    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    [error] = refused.json()["errors"]
    assert error["extensions"]["scope"] == "key"
    assert "from this API key" in error["message"]
    assert anonymous.status_code == 200
    assert made_up == [200] * 5


async def test_a_refused_request_takes_no_token_from_its_other_bucket(
    limited: GatewayFactory,
) -> None:
    key = {"Authorization": f"Bearer {PUBLISHABLE_KEY}"}
    async with (
        limited(
            rate_limit_events_ip_rate=SLOW,
            rate_limit_events_ip_burst=3,
            rate_limit_events_key_rate=SLOW,
            rate_limit_events_key_burst=1,
        ) as gw,
        gw.client() as client,
    ):
        with_key = [
            (await client.post("/v1/events", content=b"[]", headers=key)).status_code
            for _ in range(4)
        ]
        without_key = [
            (await client.post("/v1/events", content=b"[]")).status_code for _ in range(3)
        ]
    # The key's one token goes first; its three refusals leave the IP's two tokens.
    assert with_key == [400, 429, 429, 429]
    assert without_key == [401, 401, 429]


async def test_the_key_query_parameter_counts_for_events(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_events_key_rate=SLOW, rate_limit_events_key_burst=1) as gw,
        gw.client("198.51.100.1") as a,
        gw.client("198.51.100.2") as b,
    ):
        first = await a.post(f"/v1/events?key={PUBLISHABLE_KEY}", content=b"[]")
        second = await b.post(f"/v1/events?key={PUBLISHABLE_KEY}", content=b"[]")
    assert (first.status_code, second.status_code) == (400, 429)
    assert "from this API key" in second.json()["error"]


async def test_health_metrics_and_preflights_are_never_limited(limited: GatewayFactory) -> None:
    tiny = {
        f"rate_limit_{family}_ip_{what}": value
        for family in ("graphql", "events", "webhooks")
        for what, value in (("rate", SLOW), ("burst", 1))
    }
    async with limited(**tiny) as gw, gw.client() as client:
        for _ in range(5):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.options("/v1/events")).status_code == 204


async def test_tokens_refill_at_the_configured_rate(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_graphql_ip_rate=2, rate_limit_graphql_ip_burst=1) as gw,
        gw.client() as client,
    ):
        assert (await post_graphql(client)).status_code == 200
        refused = await post_graphql(client)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"  # 0.5 s, in whole seconds rounded up
        await asyncio.sleep(0.6)
        assert (await post_graphql(client)).status_code == 200


async def test_429s_are_counted_on_metrics(limited: GatewayFactory) -> None:
    before = rate_limited_total("graphql", "ip")
    async with (
        limited(rate_limit_graphql_ip_rate=SLOW, rate_limit_graphql_ip_burst=1) as gw,
        gw.client() as client,
    ):
        for _ in range(4):
            await post_graphql(client)
        scraped = (await client.get("/metrics")).text
    assert rate_limited_total("graphql", "ip") == before + 3
    assert f'tessera_rate_limited_total{{route="graphql",scope="ip"}} {before + 3}' in scraped


async def test_rate_limit_enabled_false_turns_every_limit_off(limited: GatewayFactory) -> None:
    async with (
        limited(
            rate_limit_enabled=False, rate_limit_graphql_ip_rate=SLOW, rate_limit_graphql_ip_burst=1
        ) as gw,
        gw.client() as client,
    ):
        responses = [await post_graphql(client) for _ in range(10)]
    assert {r.status_code for r in responses} == {200}
    assert "RateLimit-Remaining" not in responses[0].headers


async def test_a_zero_rate_turns_that_budget_off(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_graphql_ip_rate=0, rate_limit_graphql_ip_burst=1) as gw,
        gw.client() as client,
    ):
        assert {(await post_graphql(client)).status_code for _ in range(10)} == {200}


async def test_loopback_is_exempt_by_default(limited: GatewayFactory) -> None:
    async with (
        limited(
            rate_limit_exempt="127.0.0.0/8,::1",
            rate_limit_graphql_ip_rate=SLOW,
            rate_limit_graphql_ip_burst=1,
        ) as gw,
        gw.client("127.0.0.1") as local,
        gw.client("::1") as local6,
        gw.client("198.51.100.1") as remote,
    ):
        assert {(await post_graphql(local)).status_code for _ in range(10)} == {200}
        assert {(await post_graphql(local6)).status_code for _ in range(10)} == {200}
        assert [(await post_graphql(remote)).status_code for _ in range(2)] == [200, 429]


async def test_ipv6_clients_are_counted_per_64(limited: GatewayFactory) -> None:
    async with (
        limited(rate_limit_graphql_ip_rate=SLOW, rate_limit_graphql_ip_burst=1) as gw,
        gw.client("2001:db8:1:2::1") as first,
        gw.client("2001:db8:1:2:ffff::9") as same_64,
        gw.client("2001:db8:1:3::1") as other_64,
    ):
        assert (await post_graphql(first)).status_code == 200
        assert (await post_graphql(same_64)).status_code == 429
        assert (await post_graphql(other_64)).status_code == 200


PROXY = "10.0.0.5"


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_budget(
    limited: GatewayFactory,
) -> None:
    async with (
        limited(
            trusted_proxies="10.0.0.0/8",
            rate_limit_graphql_ip_rate=SLOW,
            rate_limit_graphql_ip_burst=1,
        ) as gw,
        gw.client(PROXY) as proxy,
    ):
        # Client X sends a made-up header; the proxy appends the address it saw.
        assert (
            await post_graphql(proxy, **{"X-Forwarded-For": "1.1.1.1, 198.51.100.7"})
        ).status_code == 200
        spoofs = [
            (
                await post_graphql(proxy, **{"X-Forwarded-For": f"1.1.1.{n}, 198.51.100.7"})
            ).status_code
            for n in range(2, 6)
        ]
        other = await post_graphql(proxy, **{"X-Forwarded-For": "198.51.100.8"})
    # Rotating the part the client wrote changes nothing; another client is separate.
    assert spoofs == [429] * 4
    assert other.status_code == 200


async def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    limited: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        limited(
            trusted_proxies="10.0.0.0/8",
            rate_limit_graphql_ip_rate=SLOW,
            rate_limit_graphql_ip_burst=1,
        ) as gw,
        gw.client("203.0.113.66") as attacker,
    ):
        statuses = [
            (
                await post_graphql(
                    attacker,
                    **{"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=198.51.100.{n}"},
                )
            ).status_code
            for n in range(5)
        ]
    assert statuses == [200, 429, 429, 429, 429]
    # A public peer is not our misconfigured proxy: no warning about it.
    assert "TRUSTED_PROXIES" not in caplog.text


async def test_the_forwarded_header_when_configured(limited: GatewayFactory) -> None:
    async with (
        limited(
            trusted_proxies=PROXY,
            proxy_header="forwarded",
            rate_limit_graphql_ip_rate=SLOW,
            rate_limit_graphql_ip_burst=1,
        ) as gw,
        gw.client(PROXY) as proxy,
    ):
        first = await post_graphql(proxy, Forwarded='for="[2001:db8:cafe::17]:4711";proto=https')
        again = await post_graphql(proxy, Forwarded="for=198.51.100.1, for=[2001:db8:cafe::99]")
        other = await post_graphql(proxy, Forwarded="for=198.51.100.9")
        # Only the configured header is read: X-Forwarded-For is the proxy's own business.
        xff = await post_graphql(proxy, **{"X-Forwarded-For": "198.51.100.10"})
        xff_again = await post_graphql(proxy, **{"X-Forwarded-For": "198.51.100.11"})
    assert (first.status_code, again.status_code, other.status_code) == (200, 429, 200)
    assert (xff.status_code, xff_again.status_code) == (200, 429)


async def test_an_untrusted_private_proxy_is_reported_once(
    limited: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    async with limited() as gw, gw.client("10.1.2.3") as proxy:
        for n in range(3):
            await post_graphql(proxy, **{"X-Forwarded-For": f"198.51.100.{n}"})
    warnings = [r.getMessage() for r in caplog.records if "TRUSTED_PROXIES" in r.getMessage()]
    assert warnings == [
        "requests from 10.1.2.3 carry x-forwarded-for, but 10.1.2.3 is not in TRUSTED_PROXIES: "
        "rate limits count that proxy as one client (set TRUSTED_PROXIES if it is yours)"
    ]


async def test_a_trusted_proxy_forwarding_private_clients_is_not_reported(
    limited: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    async with limited(trusted_proxies=PROXY) as gw, gw.client(PROXY) as proxy:
        response = await post_graphql(proxy, **{"X-Forwarded-For": "192.168.0.7"})
    assert response.status_code == 200
    assert "TRUSTED_PROXIES" not in caplog.text
