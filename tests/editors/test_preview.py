"""Preview: the page as any visitor would see it, for holders of a preview token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.editors.keys import ADMIN, PREVIEW
from tests.graphql_helpers import graphql, reasons, variants

QUERY = """
query($slug: String!, $preview: PreviewInput) {
  page(slug: $slug, preview: $preview) {
    title preview personalized
    blocks {
      id blockId variantId decision { reason ruleId }
      ... on HeroBlock { heading subheading }
      ... on CallToActionBlock { heading }
    }
  }
}
"""


async def _preview(
    client: httpx.AsyncClient, preview: dict[str, Any], slug: str = "home", **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", PREVIEW)
    return await graphql(client, QUERY, {"slug": slug, "preview": preview}, headers=headers, **kw)


async def _page(client: httpx.AsyncClient, preview: dict[str, Any], slug: str = "home") -> Any:
    response = await _preview(client, preview, slug)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["page"]


async def test_preview_needs_a_token(client: httpx.AsyncClient) -> None:
    body = (await _preview(client, {}, headers={})).json()
    assert body["data"] == {"page": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"] == (
        "Preview needs a preview token: send Authorization: Bearer <token> "
        "(configured in PREVIEW_TOKENS)."
    )
    bad = (await _preview(client, {}, headers={"Authorization": "Bearer guess"})).json()
    assert bad["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await _preview(client, {}, headers=ADMIN)).json()["data"]["page"]["preview"] is True


async def test_preview_is_never_cacheable_and_says_so(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    for _ in range(2):
        response = await _preview(client, {"audiences": ["returning"]})
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-tessera-preview"] == "true"
        assert response.json()["data"]["page"]["preview"] is True
    cache = app.state.response_cache
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (0, 0)
    # An ordinary request is not a preview.
    ordinary = await graphql(client, QUERY, {"slug": "home"}, visitor="v1")
    assert ordinary.json()["data"]["page"]["preview"] is False
    assert "x-tessera-preview" not in ordinary.headers


EXPECTED = {
    "new_visitor": {"home-hero": "welcome-offer", "home-cta": "join-offer"},
    "returning": {"home-hero": "welcome-back"},
    "high_value": {"home-hero": "vip-early-access", "home-products": "members-new"},
    "cart_abandoner": {"home-hero": "cart-reminder", "home-cta": "finish-checkout"},
    "mobile": {"site-banner": "app-offer", "home-testimonial": "short-mobile"},
    "dach": {"site-banner": "dach-shipping", "store-finder": "dach-stores"},
    "outdoor_fan": {"home-products": "trail-picks"},
}


@pytest.mark.parametrize(("audience", "expected"), EXPECTED.items(), ids=list(EXPECTED))
async def test_preview_shows_each_audiences_variants(
    client: httpx.AsyncClient, audience: str, expected: dict[str, str]
) -> None:
    page = await _page(client, {"audiences": [audience]})
    chosen = variants(page)
    for block, variant in expected.items():
        assert chosen[block] == variant
    assert reasons(page)[next(iter(expected))] == f"audience:{audience}"
    # Blocks the audience does not target show their defaults.
    nobody = variants(await _page(client, {"audiences": []}))
    assert {b: v for b, v in chosen.items() if b not in expected} == {
        b: v for b, v in nobody.items() if b not in expected
    }


async def test_attribute_overrides_drive_conditions_audiences_and_templates(
    client: httpx.AsyncClient,
) -> None:
    page = await _page(client, {"attributes": {"cart.value": 200, "traits.orders": 0}})
    assert variants(page)["home-cta"] == "big-cart-express"
    assert reasons(page)["home-cta"] == "audience:big_first_cart"
    page = await _page(client, {"attributes": {"traits.pageViews": 7}})
    hero = next(b for b in page["blocks"] if b["blockId"] == "home-hero")
    assert hero["variantId"] == "welcome-back"  # `returning` computed from the override
    assert hero["subheading"] == "Visit number 7: new arrivals since your last one."


async def test_point_in_time_shows_scheduled_variants(client: httpx.AsyncClient) -> None:
    page = await _page(client, {"at": "2026-11-28T12:00:00+00:00"})
    assert variants(page)["site-banner"] == "black-friday"
    page = await _page(client, {"at": "2026-12-02T12:00:00Z"})
    assert variants(page)["site-banner"] == "free-shipping"


async def test_forced_variants(client: httpx.AsyncClient) -> None:
    forced = {"variants": [{"blockId": "home-hero", "variantId": "vip-early-access"}]}
    page = await _page(client, forced)
    assert variants(page)["home-hero"] == "vip-early-access"
    assert reasons(page)["home-hero"] == "preview:forced"
    body = (await _preview(client, {"variants": [{"blockId": "nope", "variantId": "x"}]})).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"].startswith(
        "preview.variants: page 'home' has no block 'nope'"
    )
    body = (
        await _preview(client, {"variants": [{"blockId": "home-hero", "variantId": "x"}]})
    ).json()
    assert body["errors"][0]["message"] == (
        "preview.variants: block 'home-hero' has no variant 'x'; variants: default, "
        "welcome-offer, welcome-back, cart-reminder, vip-early-access"
    )


async def test_unknown_audiences_and_bad_attributes_are_precise(client: httpx.AsyncClient) -> None:
    body = (await _preview(client, {"audiences": ["vip"]})).json()
    assert body["errors"][0]["message"].startswith("preview.audiences: unknown audience(s) ['vip']")
    body = (await _preview(client, {"attributes": {"cart..value": 1}})).json()
    assert body["errors"][0]["message"] == (
        "preview.attributes.cart..value: not a dot path such as 'cart.value'"
    )
    body = (await _preview(client, {"attributes": [1]})).json()
    assert body["errors"][0]["message"] == (
        "preview.attributes: must be an object of dot paths to values"
    )


async def test_drafts_are_shown_only_in_preview(client: httpx.AsyncClient) -> None:
    draft = await _page(client, {}, slug="about")
    assert draft["title"] == "About Trailhead Outfitters (draft)"
    published = await _page(client, {"drafts": False}, slug="about")
    assert published["title"] == "About Trailhead Outfitters"
    ordinary = await graphql(client, QUERY, {"slug": "about"}, visitor="v2")
    assert ordinary.json()["data"]["page"]["title"] == "About Trailhead Outfitters"


async def test_preview_from_a_stored_visitor(client: httpx.AsyncClient) -> None:
    page = await _page(client, {"visitorId": "demo-vip"})
    assert variants(page)["home-hero"] == "vip-early-access"
    assert page["personalized"] is True
