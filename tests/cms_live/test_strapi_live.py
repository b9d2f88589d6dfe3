"""A real Strapi 5 behind Tessera: the shipped schema, tokens, locales, images and webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.cms_live.conftest import Tessera, settle
from tests.cms_live.servers import STRAPI_SCHEMA
from tests.cms_live.site import SECOND_LOCALE
from tests.cms_live.strapi_setup import StrapiSite, blocks_of, create_page, delete_page, ok
from tests.graphql_helpers import PAGE_QUERY, graphql, variants

pytestmark = pytest.mark.slow

TITLE = "query T($slug: String!, $locale: String) { page(slug: $slug, locale: $locale) { title } }"
Restore = Callable[[Callable[[], Any]], None]


async def page(tessera: Tessera, slug: str, visitor: str, **variables: Any) -> dict[str, Any]:
    response = await graphql(
        tessera.client, PAGE_QUERY, {"slug": slug, **variables}, visitor=visitor
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"]["page"])


async def title(tessera: Tessera, slug: str, locale: str | None = None) -> str | None:
    response = await graphql(
        tessera.client, TITLE, {"slug": slug, "locale": locale}, visitor="v-live"
    )
    data = response.json()["data"]["page"]
    return None if data is None else str(data["title"])


def test_the_schema_ships_strapis_core_router_controller_and_service() -> None:
    api = STRAPI_SCHEMA / "api" / "page"
    for kind, factory in (
        ("routes", "createCoreRouter"),
        ("controllers", "createCoreController"),
        ("services", "createCoreService"),
    ):
        source = (api / kind / "page.js").read_text()
        assert f"factories.{factory}('api::page.page')" in source


def test_the_guides_read_only_token_reads_pages(strapi_site: StrapiSite) -> None:
    """`find` on Page is a known permission and GET /api/pages answers (no routes: neither)."""
    response = httpx.get(
        f"{strapi_site.url}/api/pages",
        params={"fields[0]": "slug", "sort": "slug:asc"},
        headers={"Authorization": f"Bearer {strapi_site.token}"},
    )
    assert response.status_code == 200, response.text
    assert [d["slug"] for d in response.json()["data"]] == ["about", "home", "outdoor"]
    write = httpx.post(
        f"{strapi_site.url}/api/pages",
        json={"data": {"slug": "x", "title": "x", "blocks": []}},
        headers={"Authorization": f"Bearer {strapi_site.token}"},
    )
    assert write.status_code == 403  # read-only really is read-only


def test_title_and_blocks_are_localized_the_slug_is_not() -> None:
    schema = json.loads((STRAPI_SCHEMA / "api/page/content-types/page/schema.json").read_text())
    localized = {
        name: attribute.get("pluginOptions", {}).get("i18n", {}).get("localized")
        for name, attribute in schema["attributes"].items()
    }
    assert localized == {
        "slug": False,
        "title": True,
        "description": True,
        "locales": False,
        "titles": False,
        "blocks": True,
    }


async def test_a_personalized_page_in_two_locales(strapi_tessera: Tessera) -> None:
    vip = await page(strapi_tessera, "home", "demo-vip")
    assert variants(vip) == {"hero": "vip", "banner": "default"}
    assert vip["title"] == "Home"  # the default locale's own title, not another locale's
    newcomer = await page(strapi_tessera, "home", "v-new")
    assert newcomer["blocks"][0]["heading"] == "Welcome"
    german = await page(strapi_tessera, "home", "v-new", locale=SECOND_LOCALE)
    assert german["title"] == "Startseite"
    assert german["blocks"][0]["heading"] == "Willkommen"


async def test_image_urls_load_without_credentials(strapi_tessera: Tessera) -> None:
    hero = (await page(strapi_tessera, "home", "v-new"))["blocks"][0]
    assert hero["image"]["alt"] == "Trail at dawn"
    async with httpx.AsyncClient() as browser:
        response = await browser.get(hero["image"]["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"


async def test_a_published_edit_invalidates_exactly_that_page_within_a_second(
    strapi_site: StrapiSite, strapi_tessera: Tessera, restore: Restore
) -> None:
    assert await title(strapi_tessera, "home") == "Home"
    assert await title(strapi_tessera, "about") == "About us"
    await settle()  # the setup's own webhooks first
    since = len(strapi_tessera.sink.purged)
    strapi_site.update("about", {"title": "About, edited"})
    restore(lambda: strapi_site.update("about", {"title": "About us"}))
    elapsed, purges = await strapi_tessera.wait_for_purge(["page:about"], since)
    assert elapsed < 1.0
    assert all(keys == ["page:about"] for keys in purges), purges
    assert await title(strapi_tessera, "about") == "About, edited"
    assert await title(strapi_tessera, "home") == "Home"


async def test_a_second_locales_edit_invalidates_its_page(
    strapi_site: StrapiSite, strapi_tessera: Tessera, restore: Restore
) -> None:
    assert await title(strapi_tessera, "home", SECOND_LOCALE) == "Startseite"
    await settle()  # the setup's own webhooks first
    since = len(strapi_tessera.sink.purged)
    strapi_site.update("home", {"title": "Zuhause"}, locale=SECOND_LOCALE)
    restore(lambda: strapi_site.update("home", {"title": "Startseite"}, locale=SECOND_LOCALE))
    _, purges = await strapi_tessera.wait_for_purge(["page:home"], since)
    assert all(keys == ["page:home"] for keys in purges), purges
    assert await title(strapi_tessera, "home", SECOND_LOCALE) == "Zuhause"
    assert await title(strapi_tessera, "home") == "Home"


async def test_a_slug_rename_invalidates_the_old_and_the_new_slug(
    strapi_site: StrapiSite, strapi_tessera: Tessera, restore: Restore
) -> None:
    source = {
        "title": "Sale",
        "blocks": [
            {
                "blockId": "sale-banner",
                "type": "banner",
                "variants": [{"variantId": "default", "fields": {"text": "Sale"}}],
            }
        ],
    }
    create_page(strapi_site, "sale", source)
    restore(lambda: delete_page(strapi_site, "sale"))
    assert await title(strapi_tessera, "sale") == "Sale"
    assert await title(strapi_tessera, "winter-sale") is None
    await settle()  # the setup's own webhooks first
    since = len(strapi_tessera.sink.purged)
    strapi_site.update("sale", {"slug": "winter-sale"})
    await strapi_tessera.wait_for_purge(["page:sale", "page:winter-sale"], since)
    assert await title(strapi_tessera, "sale") is None
    assert await title(strapi_tessera, "winter-sale") == "Sale"


async def test_a_new_block_shows_after_publishing(
    strapi_site: StrapiSite, strapi_tessera: Tessera, restore: Restore
) -> None:
    extra = {
        "title": "Outdoor",
        "blocks": [
            *json.loads(json.dumps(_outdoor_blocks())),
            {
                "blockId": "tents",
                "type": "banner",
                "variants": [{"variantId": "default", "fields": {"text": "New tents"}}],
            },
        ],
    }
    assert [b["blockId"] for b in (await page(strapi_tessera, "outdoor", "v-o"))["blocks"]] == [
        "grid"
    ]
    await settle()  # the setup's own webhooks first
    since = len(strapi_tessera.sink.purged)
    strapi_site.update("outdoor", {"blocks": blocks_of(extra, None, None)})
    restore(lambda: strapi_site.update("outdoor", {"blocks": blocks_of(_outdoor(), None, None)}))
    await strapi_tessera.wait_for_purge(["page:outdoor"], since)
    order = [b["blockId"] for b in (await page(strapi_tessera, "outdoor", "v-o"))["blocks"]]
    assert order == ["grid", "tents"]


def _outdoor() -> dict[str, Any]:
    return {"title": "Outdoor", "blocks": _outdoor_blocks()}


def _outdoor_blocks() -> list[dict[str, Any]]:
    return [
        {
            "blockId": "grid",
            "type": "banner",
            "variants": [{"variantId": "default", "fields": {"text": "Tents"}}],
        }
    ]


def test_webhook_is_registered_with_the_guides_events(
    strapi_site: StrapiSite, strapi_tessera: Tessera
) -> None:
    hooks = ok(strapi_site.admin.get("/admin/webhooks"))
    ours = [hook for hook in hooks if str(hook["id"]) == strapi_site.webhook_id]
    assert ours
    assert ours[0]["isEnabled"] is True
    assert "entry.publish" in ours[0]["events"]
