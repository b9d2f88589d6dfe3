"""`page`, `visitor` and `track` over GraphQL, against the real database server."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import Clock
from tests.graphql_helpers import INGEST, PAGE_QUERY, graphql, reasons, variants

VISITOR_QUERY = "{ visitor { id known audiences traits cart personalized } }"
TRACK = """
mutation Track($event: EventInput!) {
  track(event: $event) { accepted visitor { id audiences traits cart } }
}
"""


async def page_for(client: httpx.AsyncClient, visitor: str, **variables: object) -> dict:
    response = await graphql(client, PAGE_QUERY, {"slug": "home", **variables}, visitor=visitor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["page"]


async def test_new_and_high_value_visitors_see_different_variants(
    client: httpx.AsyncClient,
) -> None:
    new = await page_for(client, "someone-new")
    vip = await page_for(client, "demo-vip")
    assert new["personalized"] is True
    assert variants(new)["home-hero"] == "welcome-offer"
    assert reasons(new)["home-hero"] == "audience:new_visitor"
    assert variants(vip)["home-hero"] == "vip-early-access"
    assert reasons(vip)["home-hero"] == "audience:high_value"
    assert variants(vip)["home-products"] == "members-new"
    hero = next(block for block in vip["blocks"] if block["blockId"] == "home-hero")
    assert hero["heading"] == "Members' early access is open"
    assert hero["decision"]["ruleId"] == "home-hero/vip-early-access"


async def test_page_shape_blocks_in_order_with_typed_fields(client: httpx.AsyncClient) -> None:
    page = await page_for(client, "demo-returning")
    assert page["slug"] == "home"
    assert page["locale"] == "en-US"
    assert [block["blockId"] for block in page["blocks"]] == [
        "site-banner",
        "home-hero",
        "home-products",
        "home-recommendations",
        "home-story",
        "home-testimonial",
        "home-cta",
        "store-finder",
    ]
    by_id = {block["blockId"]: block for block in page["blocks"]}
    assert by_id["home-products"]["products"][0]["sku"] == "TENT-2P"
    assert by_id["home-story"]["html"].startswith("<h2>Tested where it matters")
    # A type the schema does not model comes through as GenericBlock JSON.
    assert by_id["store-finder"]["type"] == "store_locator"
    assert by_id["store-finder"]["fields"] == {
        "headline": "Find a Trailhead store",
        "radiusKm": 50,
        "showMap": True,
    }
    for block in page["blocks"]:
        assert block["decision"]["variantId"] == block["variantId"]


async def test_cart_rule_and_cart_abandoner_targeting(client: httpx.AsyncClient) -> None:
    page = await page_for(client, "demo-cart")
    assert variants(page)["home-hero"] == "cart-reminder"
    # The big-first-cart rule outranks the cart-abandoner variant by priority.
    assert variants(page)["home-cta"] == "big-cart-express"
    cta = next(block for block in page["blocks"] if block["blockId"] == "home-cta")
    assert cta["decision"] == {
        "variantId": "big-cart-express",
        "reason": "audience:big_first_cart",
        "ruleId": "first-order-big-cart",
        "score": None,
        "experiment": None,
        "bucket": None,
    }


async def test_device_and_country_from_headers_and_context(client: httpx.AsyncClient) -> None:
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
    response = await graphql(
        client,
        PAGE_QUERY,
        {"slug": "home"},
        visitor="phone-user",
        headers={"User-Agent": iphone, "CF-IPCountry": "AT"},
    )
    page = response.json()["data"]["page"]
    assert variants(page)["site-banner"] == "dach-shipping"  # dach outranks mobile
    assert variants(page)["home-testimonial"] == "short-mobile"
    # The explicit context argument wins over headers.
    page = await page_for(client, "phone-user", context={"device": "DESKTOP", "country": "fr"})
    assert variants(page)["site-banner"] == "free-shipping"
    assert variants(page)["home-testimonial"] == "default"


async def test_locale_serves_localized_fields(client: httpx.AsyncClient) -> None:
    page = await page_for(client, "demo-vip", locale="de-DE")
    assert page["locale"] == "de-DE"
    assert page["title"].startswith("Trailhead Outfitters — Ausrüstung")
    banner = page["blocks"][0]
    assert banner["text"] == "Kostenloser Versand ab 50 €."
    # A bare language resolves to the page's regional locale.
    page = await page_for(client, "demo-vip", locale="de")
    assert page["locale"] == "de-DE"


async def test_schedule_uses_the_clock(client: httpx.AsyncClient, clock: Clock) -> None:
    assert variants(await page_for(client, "v1"))["site-banner"] == "free-shipping"
    clock.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    page = await page_for(client, "v1")
    assert variants(page)["site-banner"] == "black-friday"
    assert reasons(page)["site-banner"] == "priority"


async def test_unknown_slug_is_null_with_a_clear_error(client: httpx.AsyncClient) -> None:
    response = await graphql(client, PAGE_QUERY, {"slug": "nope"}, visitor="v1")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"page": None}
    assert body["errors"][0]["message"] == "No page with slug 'nope'."
    assert body["errors"][0]["extensions"]["code"] == "PAGE_NOT_FOUND"
    assert body["errors"][0]["path"] == ["page"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"slug": "home", "locale": "fr-FR"},
            "not available in 'fr-FR'; available locales: en-US, de-DE",
        ),
        ({"slug": "home", "locale": "not a locale!"}, "is not a BCP 47 tag"),
        ({"slug": "home", "context": {"country": "Germany"}}, "not an ISO 3166-1 alpha-2 code"),
        ({"slug": "../../etc/passwd"}, "No page with slug '../../etc/passwd'."),
    ],
)
async def test_bad_arguments_get_precise_errors(
    client: httpx.AsyncClient, variables: dict, message: str
) -> None:
    response = await graphql(client, PAGE_QUERY, variables, visitor="v1")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"page": None}
    assert message in body["errors"][0]["message"]


REQUEST_ERRORS = [
    pytest.param({"query": "{ page(slug: "}, "Syntax Error: Unexpected <EOF>.", id="syntax"),
    pytest.param(
        {"query": "{ page { slug } }"},
        "Argument 'Query.page(slug:)' of type 'String!' is required",
        id="missing-argument",
    ),
    pytest.param(
        {"query": "{ nope }"}, "Cannot query field 'nope' on type 'Query'.", id="unknown-field"
    ),
    pytest.param(
        {"query": PAGE_QUERY, "variables": {"slug": 42}},
        "Variable '$slug' has invalid value: String cannot represent a non string value: 42",
        id="variable-type",
    ),
    pytest.param(
        {"query": PAGE_QUERY, "variables": {}},
        "Variable '$slug' has invalid value: Expected a value of non-null type 'String!'",
        id="variable-missing",
    ),
]


@pytest.mark.parametrize(("payload", "message"), REQUEST_ERRORS)
async def test_request_errors_are_400_for_graphql_response_json(
    client: httpx.AsyncClient, payload: dict, message: str
) -> None:
    response = await client.post(
        "/graphql",
        json=payload,
        headers={"X-Visitor-Id": "v1", "Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert message in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(("payload", "message"), REQUEST_ERRORS)
async def test_request_errors_are_200_for_legacy_json(
    client: httpx.AsyncClient, payload: dict, message: str
) -> None:
    response = await client.post("/graphql", json=payload, headers={"X-Visitor-Id": "v1"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert message in response.json()["errors"][0]["message"]


async def test_execution_errors_stay_200_for_graphql_response_json(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": PAGE_QUERY, "variables": {"slug": "missing"}},
        headers={"X-Visitor-Id": "v1", "Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"page": None}


async def test_not_json_body_is_a_client_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert "JSON" in response.text


async def test_invalid_visitor_header_is_rejected(client: httpx.AsyncClient) -> None:
    response = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="bad id with spaces")
    assert response.status_code == 400
    assert "X-Visitor-Id" in response.json()["errors"][0]["message"]


async def test_first_visit_sets_cookie_and_cookie_identifies_next_visit(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/graphql", json={"query": VISITOR_QUERY})
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("tsr_vid=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert first.headers["cache-control"] == "private, no-store"
    visitor_id = first.json()["data"]["visitor"]["id"]
    assert cookie.startswith(f"tsr_vid={visitor_id};")
    # httpx keeps the cookie: the second request is the same visitor, no new cookie.
    second = await client.post("/graphql", json={"query": VISITOR_QUERY})
    assert second.json()["data"]["visitor"]["id"] == visitor_id
    assert "set-cookie" not in second.headers


async def test_header_wins_over_cookie(client: httpx.AsyncClient) -> None:
    client.cookies.set("tsr_vid", "from-cookie")
    response = await graphql(client, VISITOR_QUERY, visitor="from-header")
    assert response.json()["data"]["visitor"]["id"] == "from-header"
    response = await client.post("/graphql", json={"query": VISITOR_QUERY})
    assert response.json()["data"]["visitor"]["id"] == "from-cookie"


async def test_visitor_shows_audiences_and_traits(client: httpx.AsyncClient) -> None:
    response = await graphql(client, VISITOR_QUERY, visitor="demo-vip")
    visitor = response.json()["data"]["visitor"]
    assert visitor["known"] is True
    assert visitor["personalized"] is True
    assert visitor["audiences"] == ["high_value", "outdoor_fan", "returning"]
    assert visitor["traits"]["orders"] == 7
    assert visitor["traits"]["ltv"] == 1840.5


async def test_tracking_switches_the_variant(client: httpx.AsyncClient) -> None:
    visitor = "shopper-1"
    assert variants(await page_for(client, visitor))["home-hero"] == "welcome-offer"
    for _ in range(3):
        response = await graphql(
            client, TRACK, {"event": {"type": "PAGE_VIEW"}}, visitor=visitor, headers=INGEST
        )
        assert response.json()["data"]["track"]["accepted"] is True
    assert variants(await page_for(client, visitor))["home-hero"] == "welcome-back"
    response = await graphql(
        client,
        TRACK,
        {"event": {"type": "PURCHASE", "revenue": 650.0, "productId": "TENT-4S"}},
        visitor=visitor,
        headers=INGEST,
    )
    tracked = response.json()["data"]["track"]["visitor"]
    assert tracked["traits"]["orders"] == 1
    assert "high_value" in tracked["audiences"]
    assert variants(await page_for(client, visitor))["home-hero"] == "vip-early-access"


async def test_track_updates_profile_atomically_in_mongodb(
    client: httpx.AsyncClient, mongo: object, database_name: str
) -> None:
    import asyncio

    visitor = "busy-visitor"
    event = {"type": "ADD_TO_CART", "price": 10.5, "quantity": 2, "category": "outdoor"}
    responses = await asyncio.gather(
        *(
            graphql(client, TRACK, {"event": event}, visitor=visitor, headers=INGEST)
            for _ in range(25)
        )
    )
    assert all(r.json()["data"]["track"]["accepted"] for r in responses)
    profile = await mongo[database_name]["profiles"].find_one({"_id": visitor})  # type: ignore[index]
    assert profile["cart"]["items"] == 50
    assert profile["cart"]["value"] == pytest.approx(525.0)
    assert profile["counts"]["add_to_cart"] == 25
    assert profile["interests"]["outdoor"]["v"] == 25  # stored with its time; decayed on read
    assert profile["traits"]["firstSeen"] <= profile["traits"]["lastSeen"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "ADD_TO_CART"}, "event.price: add_to_cart needs the item's price"),
        ({"type": "PAGE_VIEW", "quantity": 0}, "event.quantity: must be between 1 and 10000"),
        ({"type": "PURCHASE", "revenue": -5}, "event.revenue: must be a non-negative amount"),
        ({"type": "CLICK", "category": "a.b"}, "event.category: must be 1-64 letters"),
    ],
)
async def test_bad_events_are_rejected_and_store_nothing(
    client: httpx.AsyncClient, mongo: object, database_name: str, event: dict, message: str
) -> None:
    response = await graphql(client, TRACK, {"event": event}, visitor="careful", headers=INGEST)
    body = response.json()
    assert body["data"] is None
    assert message in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await mongo[database_name]["profiles"].find_one({"_id": "careful"}) is None  # type: ignore[index]


async def test_unknown_event_type_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await graphql(
        client,
        TRACK,
        {"event": {"type": "TELEPORT"}},
        visitor="v",
        headers={"Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    assert "Value 'TELEPORT' does not exist in 'EventType' enum" in response.text


async def test_graphiql_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["mongodb"] == "ok"
