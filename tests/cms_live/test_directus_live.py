"""A real Directus 11 behind Tessera: the model import, content, pages, images and the Flow.

The Flow is the guide's (Event Hook -> Webhook request with `{{$trigger}}`);
its update events carry only the changed fields, so these tests check that
Tessera resolves each one to exactly the page it changed, within a second.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cms.vendors import SECRET
from tests.cms_live.conftest import Tessera, settle
from tests.cms_live.directus_setup import DirectusSite, create_page, delete_page, ok
from tests.cms_live.servers import DirectusServer
from tests.cms_live.site import SECOND_LOCALE
from tests.graphql_helpers import PAGE_QUERY, graphql, variants

pytestmark = pytest.mark.slow

TITLE = "query T($slug: String!, $locale: String) { page(slug: $slug, locale: $locale) { title } }"
Restore = Callable[[Callable[[], Any]], None]


async def page(tessera: Tessera, slug: str, **variables: Any) -> dict[str, Any]:
    response = await graphql(
        tessera.client, PAGE_QUERY, {"slug": slug, **variables}, visitor=variables.pop("v", None)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"]["page"])


async def title(tessera: Tessera, slug: str) -> str | None:
    response = await graphql(tessera.client, TITLE, {"slug": slug}, visitor="v-live")
    data = response.json()["data"]["page"]
    return None if data is None else str(data["title"])


def test_the_snapshot_applies_twice_and_the_second_changes_nothing(
    directus_site: DirectusSite,
) -> None:
    first, second = directus_site.applies
    assert "Snapshot applied successfully" in first
    assert "No changes to apply" in second


def test_applying_it_again_over_content_keeps_the_content(directus_site: DirectusSite) -> None:
    before = ok(directus_site.admin.get("/items/block_variants", params={"aggregate[count]": "*"}))
    output = directus_site.server.apply_snapshot()
    assert "No changes to apply" in output
    assert "Delete" not in directus_site.server.dry_run()
    after = ok(directus_site.admin.get("/items/block_variants", params={"aggregate[count]": "*"}))
    assert after == before
    assert directus_site.page("home")["title"] == "Home"


async def test_a_personalized_page_in_two_locales(directus_tessera: Tessera) -> None:
    vip = await page(directus_tessera, "home", v="demo-vip")
    assert variants(vip) == {"hero": "vip", "banner": "default"}
    assert vip["personalized"] is True
    newcomer = await page(directus_tessera, "home", v="v-new")
    assert variants(newcomer) == {"hero": "default", "banner": "default"}
    german = await page(directus_tessera, "home", locale=SECOND_LOCALE, v="v-new")
    assert german["title"] == "Startseite"
    assert german["blocks"][0]["heading"] == "Willkommen"


async def test_image_urls_load_without_credentials(directus_tessera: Tessera) -> None:
    hero = (await page(directus_tessera, "home", v="v-new"))["blocks"][0]
    url = hero["image"]["url"]
    assert hero["image"]["alt"] == "Trail at dawn"
    async with httpx.AsyncClient() as browser:  # no token: what a visitor's browser sends
        response = await browser.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"


async def test_blocks_keep_a_deterministic_order(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
) -> None:
    blocks = [
        {
            "blockId": f"ordered-{name}",
            "type": "banner",
            "variants": [{"variantId": "default", "fields": {"text": name}}],
        }
        for name in ("one", "two", "three")
    ]
    create_page(directus_site, "ordered", {"title": "Ordered", "blocks": blocks}, "published")
    restore(lambda: delete_page(directus_site, "ordered"))
    junctions = directus_site.junction_ids["ordered"]
    rows = ok(
        directus_site.admin.get(
            "/items/pages_blocks", params={"filter[id][_in]": ",".join(map(str, junctions))}
        )
    )
    assert [row["sort"] for row in rows] == [None, None, None]  # what the API leaves
    order = [b["blockId"] for b in (await page(directus_tessera, "ordered", v="v-o"))["blocks"]]
    assert order == ["ordered-one", "ordered-two", "ordered-three"]  # as added
    # An editor drags "three" first: rows with a sort come first, the rest as added.
    await settle()
    since = len(directus_tessera.sink.purged)
    directus_site.update("pages_blocks", junctions[2], {"sort": 1})
    directus_site.update("pages_blocks", junctions[1], {"sort": 2})
    await directus_tessera.wait_for_purge(["page:ordered"], since)
    await settle()
    order = [b["blockId"] for b in (await page(directus_tessera, "ordered", v="v-o"))["blocks"]]
    assert order == ["ordered-three", "ordered-two", "ordered-one"]


async def test_a_title_edit_invalidates_exactly_that_page_within_a_second(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
) -> None:
    assert await title(directus_tessera, "home") == "Home"
    assert await title(directus_tessera, "about") == "About us"  # cached too
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    home = directus_site.page_ids["home"]
    directus_site.update("pages", home, {"title": "Home, edited"})
    restore(lambda: directus_site.update("pages", home, {"title": "Home"}))
    elapsed, purges = await directus_tessera.wait_for_purge(["page:home"], since)
    assert elapsed < 1.0
    assert purges == [["page:home"]]
    assert await title(directus_tessera, "home") == "Home, edited"


async def test_a_variant_edit_invalidates_the_pages_using_its_block(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
) -> None:
    heading = (await page(directus_tessera, "home", v="demo-vip"))["blocks"][0]["heading"]
    assert heading == "Members' early access"
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    vip = directus_site.variant_ids[("hero", "vip")]
    directus_site.update("block_variants", vip, {"fields": {"heading": "Members first"}})
    original = {"heading": "Members' early access"}
    restore(lambda: directus_site.update("block_variants", vip, {"fields": original}))
    _, purges = await directus_tessera.wait_for_purge(["page:home"], since)
    assert purges == [["page:home"]]
    heading = (await page(directus_tessera, "home", v="demo-vip"))["blocks"][0]["heading"]
    assert heading == "Members first"


async def test_a_translation_edit_invalidates_its_page(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
) -> None:
    german = await page(directus_tessera, "home", locale=SECOND_LOCALE, v="v-de")
    assert german["title"] == "Startseite"
    rows = ok(
        directus_site.admin.get(
            "/items/pages_translations",
            params={"filter[pages_id][_eq]": directus_site.page_ids["home"], "fields": "id"},
        )
    )
    key = rows[0]["id"]
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    directus_site.update("pages_translations", key, {"title": "Willkommen daheim"})
    restore(lambda: directus_site.update("pages_translations", key, {"title": "Startseite"}))
    _, purges = await directus_tessera.wait_for_purge(["page:home"], since)
    assert purges == [["page:home"]]
    german = await page(directus_tessera, "home", locale=SECOND_LOCALE, v="v-de")
    assert german["title"] == "Willkommen daheim"


async def test_a_slug_rename_invalidates_the_old_and_the_new_slug(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
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
    create_page(directus_site, "sale", copy.deepcopy(source), "published")
    restore(lambda: delete_page(directus_site, "sale"))
    assert await title(directus_tessera, "sale") == "Sale"
    assert await title(directus_tessera, "winter-sale") is None  # not found, remembered
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    directus_site.update("pages", directus_site.page_ids["sale"], {"slug": "winter-sale"})
    _, purges = await directus_tessera.wait_for_purge(["page:sale", "page:winter-sale"], since)
    assert purges == [["page:sale", "page:winter-sale"]]
    assert await title(directus_tessera, "sale") is None
    assert await title(directus_tessera, "winter-sale") == "Sale"
    directus_site.update("pages", directus_site.page_ids["sale"], {"slug": "sale"})


async def test_deleting_a_page_invalidates_its_slug(
    directus_site: DirectusSite, directus_tessera: Tessera
) -> None:
    source = {
        "title": "Gone soon",
        "blocks": [
            {
                "blockId": "gone-banner",
                "type": "banner",
                "variants": [{"variantId": "default", "fields": {"text": "Bye"}}],
            }
        ],
    }
    create_page(directus_site, "gone", source, "published")
    assert await title(directus_tessera, "gone") == "Gone soon"
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    delete_page(directus_site, "gone")
    _, purges = await directus_tessera.wait_for_purge(["page:gone"], since)
    # The page's junction rows go with it: each of their events names the page too.
    assert all(keys == ["page:gone"] for keys in purges), purges
    assert await title(directus_tessera, "gone") is None


async def test_the_flow_body_is_the_trigger_with_only_the_changed_fields(
    directus_site: DirectusSite, directus_tessera: Tessera, restore: Restore
) -> None:
    """What the Flow sends: the reason Tessera must look the item up."""
    await settle()  # the setup's own webhooks first
    since = len(directus_tessera.sink.purged)
    about = directus_site.page_ids["about"]
    directus_site.update("pages", about, {"description": "Who we are"})
    restore(lambda: directus_site.update("pages", about, {"description": None}))
    await directus_tessera.wait_for_purge(["page:about"], since)
    # Directus logs a run after its last step, so the purge can arrive before the log.
    deadline = time.monotonic() + 15
    while True:
        runs = [run["data"] for run in directus_site.flow_runs() if "steps" in run]
        sent = [r for r in runs if r["$trigger"].get("payload") == {"description": "Who we are"}]
        if sent or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sent, json.dumps(runs)[:2000]
    assert sent[0]["$trigger"]["keys"] == [str(about)]  # the key and the changed field only
    assert sent[0]["$last"]["data"] == {"invalidated": ["page:about"]}  # Tessera's answer


async def test_with_the_default_deny_list_a_flow_cannot_reach_a_local_tessera(
    tmp_path: Path, directus_tessera: Tessera
) -> None:
    """Why the guide sets IMPORT_IP_DENY_LIST: the save succeeds, only the Flow's log tells."""
    server = DirectusServer(tmp_path / "directus-default", deny_list=None)
    server.bootstrap()
    server.apply_snapshot()
    server.start()
    try:
        live = DirectusSite(
            server,
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {server.admin_token}"},
                timeout=30,
            ),
            token="",
            applies=[],
        )
        live.create_flow(f"{directus_tessera.url}/webhooks/directus", SECRET)
        since = len(directus_tessera.sink.purged)
        ok(live.admin.post("/items/pages", json={"slug": "denied", "title": "Denied"}))
        for _ in range(100):
            runs = live.flow_runs()
            if runs:
                break
            await asyncio.sleep(0.05)
        log = json.dumps(runs)
        assert "resolves to a denied IP address" in log, log[:2000]
        await settle()
        assert directus_tessera.sink.purged[since:] == []  # Tessera never heard of it
        live.admin.close()
    finally:
        server.stop()
