"""Cache headers derived from the decisions: public, audience (edge key) or private."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from delivery.services import Services
from gateway.app import create_app
from gateway.settings import DEMO_CONTENT_DIR, Settings
from tests.conftest import Clock, ServedGateway
from tests.graphql_helpers import INGEST, PAGE_QUERY, graphql

ABOUT = 'query { page(slug: "about") { slug cacheScope blocks { id blockId variantId } } }'
# Targets audiences only (outdoor_fan, returning, dach, mobile): shareable per edge key.
OUTDOOR = 'query { page(slug: "outdoor") { cacheScope blocks { blockId variantId } } }'
# Audiences, and a returning visitor's visit count in a template (private for them).
HOME = 'query { page(slug: "home") { cacheScope blocks { blockId variantId } } }'


def cookies(response: httpx.Response) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


async def get(
    client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    client.cookies.clear()  # each request a browser of its own, with only `headers`
    return await client.get("/graphql", params={"query": query}, headers=headers or {})


async def test_a_public_page_is_shareable_and_sets_no_cookie(client: httpx.AsyncClient) -> None:
    response = await get(client, ABOUT)
    assert response.status_code == 200
    headers = response.headers
    assert headers["x-tessera-cache-scope"] == "public"
    # Browsers revalidate every time (a stale page could hide a visitor's own change);
    # shared caches read how long they may serve stale copies from their own headers.
    assert headers["cache-control"] == "public, max-age=0, s-maxage=60"
    edge = "max-age=60, stale-while-revalidate=30, stale-if-error=86400"
    assert headers["surrogate-control"] == headers["cdn-cache-control"] == edge
    assert "set-cookie" not in headers
    keys = headers["surrogate-key"].split()
    assert keys == headers["xkey"].split()
    expected = {"page:about", "block:about-story", "block:about-cta", "locale:en-US"}
    # cms:<name> is what a webhook purges when the CMS cannot say what changed.
    assert expected | {"cms:filesystem"} <= set(keys)
    assert headers["cache-tag"].split(",") == keys  # Cloudflare's spelling
    assert headers["etag"].startswith('"')
    assert "cookie" not in headers["vary"].lower()
    assert response.json()["data"]["page"]["cacheScope"] == "PUBLIC"


async def test_if_none_match_and_head(client: httpx.AsyncClient) -> None:
    first = await get(client, ABOUT)
    etag = first.headers["etag"]
    again = await get(client, ABOUT, {"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    other = await get(client, ABOUT, {"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    head = await client.head("/graphql", params={"query": ABOUT})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == etag
    assert int(head.headers["content-length"]) == len(first.content)


async def test_an_audience_page_is_private_until_the_edge_key_is_presented(
    client: httpx.AsyncClient,
) -> None:
    first = await get(client, OUTDOOR)
    assert first.headers["x-tessera-cache-scope"] == "private"
    assert first.headers["cache-control"] == "private, no-store"
    given = cookies(first)
    assert set(given) == {"tsr_vid", "tsr_ek"}
    assert given["tsr_ek"].startswith("ek1.")
    jar = {"Cookie": f"tsr_vid={given['tsr_vid']}; tsr_ek={given['tsr_ek']}"}
    second = await get(client, OUTDOOR, jar)
    assert second.headers["x-tessera-cache-scope"] == "audience"
    assert second.headers["cache-control"].startswith("public, max-age=0, s-maxage=60")
    assert "set-cookie" not in second.headers
    assert "X-Tessera-Edge-Key" in second.headers["vary"]
    # Shared under the key presented; the page's own facts have a key of their own.
    assert second.headers["x-tessera-edge-key"] == given["tsr_ek"]
    assert second.headers["x-tessera-page-key"].startswith("ek1.")
    assert second.headers["x-tessera-page-key"] != given["tsr_ek"]
    assert second.json()["data"]["page"]["cacheScope"] == "AUDIENCE"
    assert second.json()["data"] == first.json()["data"] | {
        "page": {**first.json()["data"]["page"], "cacheScope": "AUDIENCE"}
    }
    # The header works as well as the cookie (edge workers, server-side renderers).
    header = await get(
        client, OUTDOOR, {"X-Visitor-Id": given["tsr_vid"], "X-Tessera-Edge-Key": given["tsr_ek"]}
    )
    assert header.headers["x-tessera-cache-scope"] == "audience"


async def test_visitors_with_the_same_facts_share_a_key_others_do_not(
    client: httpx.AsyncClient,
) -> None:
    one = cookies(await get(client, OUTDOOR, {"X-Visitor-Id": "same-facts-1"}))
    two = cookies(await get(client, OUTDOOR, {"X-Visitor-Id": "same-facts-2"}))
    vip = cookies(await get(client, OUTDOOR, {"X-Visitor-Id": "demo-vip"}))
    assert one["tsr_ek"] == two["tsr_ek"]
    assert vip["tsr_ek"] != one["tsr_ek"]
    mobile = cookies(
        await get(
            client,
            OUTDOOR,
            {"X-Visitor-Id": "same-facts-3", "User-Agent": "Mozilla/5.0 (iPhone) Mobile/15E148"},
        )
    )
    assert mobile["tsr_ek"] != one["tsr_ek"]


async def test_a_stale_edge_key_is_refreshed_privately(client: httpx.AsyncClient) -> None:
    visitor = "changing-facts"
    key = cookies(await get(client, OUTDOOR, {"X-Visitor-Id": visitor}))["tsr_ek"]
    present = {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": key}
    assert (await get(client, OUTDOOR, present)).headers["x-tessera-cache-scope"] == "audience"
    for _ in range(3):  # three page views: new_visitor becomes returning
        await graphql(
            client,
            "mutation { track(event: {type: PAGE_VIEW}) { accepted } }",
            visitor=visitor,
            headers=INGEST,
        )
    stale = await get(client, OUTDOOR, present)
    assert stale.headers["cache-control"] == "private, no-store"
    fresh = cookies(stale)["tsr_ek"]
    assert fresh != key
    present["X-Tessera-Edge-Key"] = fresh
    assert (await get(client, OUTDOOR, present)).headers["x-tessera-cache-scope"] == "audience"


async def test_visitor_fields_mutations_errors_and_previews_are_private(
    client: httpx.AsyncClient,
) -> None:
    visitor = await get(client, '{ visitor { id } page(slug: "about") { slug } }')
    assert visitor.headers["cache-control"] == "private, no-store"
    assert visitor.headers["x-tessera-cache-scope"] == "private"
    mutation = await graphql(
        client, "mutation { track(event: {type: PAGE_VIEW}) { accepted } }", headers=INGEST
    )
    assert mutation.headers["cache-control"] == "private, no-store"
    missing = await get(client, '{ page(slug: "nope") { slug } }')
    assert missing.headers["cache-control"] == "private, no-store"
    assert "etag" not in missing.headers
    bad = await get(client, "{ nope }")
    assert bad.headers["cache-control"] == "private, no-store"


CART_PAGE = """
slug: cart-page
title: Cart page
blocks:
  - id: cart-cta
    type: banner
    variants:
      - id: plain
        default: true
        fields: {text: Hello}
      - id: big
        condition: {"cart.value": {"$gte": 150}}
        fields: {text: Big cart}
"""


async def test_a_page_reading_individual_data_is_private_for_everyone(
    client: httpx.AsyncClient, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    # The demo home shows a returning visitor their visit count (a personal template).
    returning = await get(client, HOME, {"X-Visitor-Id": "demo-returning"})
    assert returning.headers["cache-control"] == "private, no-store"
    assert returning.json()["data"]["page"]["cacheScope"] == "PRIVATE"
    # A condition on the cart: private for every visitor, matched or not.
    (tmp_path / "content" / "pages").mkdir(parents=True)
    (tmp_path / "content" / "pages" / "cart-page.yaml").write_text(CART_PAGE)
    application = create_app(
        settings.model_copy(update={"content_dir": tmp_path / "content"}), clock=clock
    )
    query = '{ page(slug: "cart-page") { cacheScope blocks { variantId } } }'
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as own:
            for visitor in ("new-x", "demo-cart"):
                first = await get(own, query, {"X-Visitor-Id": visitor})
                key = cookies(first).get("tsr_ek", "none")
                again = await get(own, query, {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": key})
                assert again.headers["cache-control"] == "private, no-store", visitor
                assert again.json()["data"]["page"]["cacheScope"] == "PRIVATE"


async def test_introspection_and_typename_are_public(client: httpx.AsyncClient) -> None:
    response = await get(client, "{ __typename }")
    assert response.headers["x-tessera-cache-scope"] == "public"


async def test_get_may_not_run_mutations(client: httpx.AsyncClient) -> None:
    response = await get(client, "mutation { track(event: {type: PAGE_VIEW}) { accepted } }")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_block_ids_are_unique_per_locale_and_variant(client: httpx.AsyncClient) -> None:
    query = (
        'query($l: String) { page(slug: "home", locale: $l) { blocks { id blockId variantId } } }'
    )
    english = await graphql(client, query, {"l": "en-US"}, visitor="locale-ids")
    german = await graphql(client, query, {"l": "de-DE"}, visitor="locale-ids")
    en = {b["blockId"]: b for b in english.json()["data"]["page"]["blocks"]}
    de = {b["blockId"]: b for b in german.json()["data"]["page"]["blocks"]}
    assert en.keys() == de.keys()
    for block_id, block in en.items():
        assert block["id"] == f"{block_id}:en-US:{block['variantId']}"
        assert de[block_id]["id"] != block["id"]
    vip = await graphql(client, query, {"l": "en-US"}, visitor="demo-vip")
    hero = next(b for b in vip.json()["data"]["page"]["blocks"] if b["blockId"] == "home-hero")
    assert hero["id"] != en["home-hero"]["id"]  # another variant, another id


async def test_the_page_query_still_works_over_post(client: httpx.AsyncClient) -> None:
    response = await graphql(client, PAGE_QUERY, {"slug": "home"}, visitor="demo-vip")
    assert response.status_code == 200
    assert response.json()["data"]["page"]["personalized"] is True


async def test_the_event_beacon_mints_a_visitor_id_and_refreshes_the_edge_key(
    client: httpx.AsyncClient,
) -> None:
    client.cookies.clear()
    first = await client.post(
        "/v1/events", json=[{"type": "page_view", "eventId": "beacon-1"}], headers=INGEST
    )
    assert first.status_code == 200, first.text
    given = cookies(first)
    visitor = given["tsr_vid"]
    # The minted id is the one the event was stored for: the page now knows the visitor.
    page = await get(client, OUTDOOR, {"X-Visitor-Id": visitor})
    assert cookies(page)["tsr_ek"] == given["tsr_ek"]
    for n in range(2, 4):  # returning after three page views: a new edge key
        later = await client.post(
            "/v1/events",
            json=[{"type": "page_view", "eventId": f"beacon-{n}"}],
            headers={**INGEST, "Cookie": f"tsr_vid={visitor}; tsr_ek={given['tsr_ek']}"},
        )
    assert "tsr_vid" not in cookies(later)
    refreshed = cookies(later)["tsr_ek"]
    assert refreshed != given["tsr_ek"]
    present = {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": refreshed}
    assert (await get(client, OUTDOOR, present)).headers["x-tessera-cache-scope"] == "audience"


SALE = (
    'query { page(slug: "sale") { cacheScope blocks { blockId variantId '
    "decision { experiment variation } } } }"
)


async def test_experiment_arms_are_part_of_the_edge_key(client: httpx.AsyncClient) -> None:
    by_arm: dict[int, list[tuple[str, str]]] = {}
    for n in range(40):
        visitor = f"arm-{n}"
        response = await get(client, SALE, {"X-Visitor-Id": visitor})
        hero = next(
            b for b in response.json()["data"]["page"]["blocks"] if b["blockId"] == "sale-hero"
        )
        if hero["decision"]["experiment"] is not None:
            arm = hero["decision"]["variation"]
            by_arm.setdefault(arm, []).append((visitor, cookies(response)["tsr_ek"]))
    assert len(by_arm) >= 2, by_arm.keys()
    keys = {arm: {key for _, key in members} for arm, members in by_arm.items()}
    # Same facts, same arm: one key; another arm: another key.
    assert all(len(arm_keys) == 1 for arm_keys in keys.values()), keys
    assert len({next(iter(arm_keys)) for arm_keys in keys.values()}) == len(keys)
    # A visitor presenting their own key gets the page shared under it; another arm's
    # key is refused (private, with their own key handed back).
    (visitor, own), *_ = by_arm[min(by_arm)]
    other = next(iter(keys[max(by_arm)]))
    shared = await get(client, SALE, {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": own})
    assert shared.headers["x-tessera-cache-scope"] == "audience"
    refused = await get(client, SALE, {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": other})
    assert refused.headers["x-tessera-cache-scope"] == "private"
    assert cookies(refused)["tsr_ek"] == own


async def _swept(services: Services) -> None:
    """Wait until the gateway's experiment sweep has read the sale page."""
    for _ in range(400):
        if len(services.experiments):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the experiment sweep never read the sale page")


async def test_replicas_agree_on_the_arms_of_pages_only_one_of_them_served(
    gateway: Callable[..., AbstractAsyncContextManager[ServedGateway]],
) -> None:
    async with (
        gateway(experiment_sweep_seconds=300) as (a, services_a),
        gateway(experiment_sweep_seconds=300) as (b, services_b),
        gateway(experiment_sweep_seconds=0) as (c, _),
    ):
        await _swept(services_a)
        await _swept(services_b)
        visitor = "replica-visitor"
        served = await get(a, SALE, {"X-Visitor-Id": visitor})
        hero = next(
            b for b in served.json()["data"]["page"]["blocks"] if b["blockId"] == "sale-hero"
        )
        assert hero["decision"]["experiment"] == "sale-hero-headline"
        present = {"X-Visitor-Id": visitor, "X-Tessera-Edge-Key": cookies(served)["tsr_ek"]}
        # B never served the sale page, and knows its experiment from the sweep.
        assert (await get(b, OUTDOOR, present)).headers["x-tessera-cache-scope"] == "audience"
        # A replica that knows only the pages it served refuses A's key: with a load
        # balancer in front, the visitor's key would flip on every change of replica.
        refused = await get(c, OUTDOOR, present)
        assert refused.headers["x-tessera-cache-scope"] == "private"
        assert cookies(refused)["tsr_ek"] != present["X-Tessera-Edge-Key"]


async def test_an_experiment_that_left_the_content_leaves_the_edge_keys(
    gateway: Callable[..., AbstractAsyncContextManager[ServedGateway]], tmp_path: Path
) -> None:
    content = tmp_path / "content"
    shutil.copytree(DEMO_CONTENT_DIR, content)
    visitor = {"X-Visitor-Id": "leaving-visitor"}
    async with gateway(content_dir=content, experiment_sweep_seconds=0.1) as (a, services_a):
        await _swept(services_a)
        before = cookies(await get(a, SALE, visitor))["tsr_ek"]
        (content / "pages" / "sale.yaml").unlink()
        for _ in range(400):
            if not len(services_a.experiments):
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the sweep kept the experiment of a page that is gone")
        changed = await get(a, OUTDOOR, {**visitor, "X-Tessera-Edge-Key": before})
        assert changed.headers["x-tessera-cache-scope"] == "private"
        after = cookies(changed)["tsr_ek"]
        assert after != before
        # A replica started after the change (that never saw the experiment) agrees.
        async with gateway(content_dir=content, experiment_sweep_seconds=0) as (fresh, _):
            again = await get(fresh, OUTDOOR, {**visitor, "X-Tessera-Edge-Key": after})
            assert again.headers["x-tessera-cache-scope"] == "audience"
