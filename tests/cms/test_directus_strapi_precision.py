"""Directus and Strapi specifics, offline: precise webhooks, block order, the shipped models.

The live servers (tests/cms_live) show the same with real Directus and Strapi;
these run against the recorded-style fakes in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.directus import DirectusAdapter
from cms_adapters.errors import MalformedContent
from cms_adapters.strapi import StrapiAdapter
from tests.cms.vendors import SECRET, FakeDirectus, FakeStrapi, bearer_webhook

REPO = Path(__file__).resolve().parents[2]


def flow(collection: str, event: str, **fields: object) -> WebhookRequest:
    """A Directus Flow's `{{$trigger}}` body."""
    return bearer_webhook(
        "/webhooks/directus",
        {"event": f"{collection}.items.{event}", "collection": collection, **fields},
        SECRET,
    )


@pytest.fixture
async def directus() -> tuple[FakeDirectus, DirectusAdapter]:
    vendor = FakeDirectus()
    adapter = vendor.adapter()
    assert isinstance(adapter, DirectusAdapter)
    return vendor, adapter


async def test_a_title_edit_names_just_its_page(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    request = flow("pages", "update", keys=[str(vendor.page_id("about"))], payload={"title": "x"})
    assert adapter.parse_webhook(request) == ChangedKeys(everything=True)  # payload alone: no slug
    assert await adapter.resolve_webhook(request) == ChangedKeys(pages=frozenset({"about"}))


async def test_a_variant_edit_names_the_pages_with_its_block(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    hero_vip = 100 * (100 * vendor.page_id("home") + 0) + 0
    request = flow("block_variants", "update", keys=[hero_vip], payload={"priority": 3})
    assert await adapter.resolve_webhook(request) == ChangedKeys(pages=frozenset({"home"}))


async def test_a_block_edit_names_the_pages_with_it(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    grid = 100 * vendor.page_id("outdoor")
    request = flow("blocks", "update", keys=[grid], payload={"type": "banner"})
    assert await adapter.resolve_webhook(request) == ChangedKeys(pages=frozenset({"outdoor"}))


async def test_a_rename_names_the_old_and_the_new_slug(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    number = vendor.page_id("about")
    vendor.history[number] = ["about-us"]  # it was called about-us before this save
    request = flow("pages", "update", keys=[str(number)], payload={"slug": "about"})
    changed = await adapter.resolve_webhook(request)
    assert changed == ChangedKeys(pages=frozenset({"about", "about-us"}))


async def test_a_failed_lookup_falls_back_to_every_page(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    vendor.failures += [vendor.unauthorized()]
    request = flow("pages", "update", keys=["1"], payload={"title": "x"})
    assert await adapter.resolve_webhook(request) == ChangedKeys(everything=True)


@pytest.mark.parametrize(
    "body",
    [
        {"event": "languages.items.update", "collection": "languages", "keys": ["de-DE"]},
        {
            "event": "pages.items.update",
            "collection": "pages",
            "keys": [str(n) for n in range(101)],
        },
        {"event": "pages.items.sort", "collection": "pages", "keys": ["1"]},
        {"event": "pages.items.update", "collection": "pages"},
    ],
)
async def test_what_cannot_be_narrowed_down_names_every_page(
    directus: tuple[FakeDirectus, DirectusAdapter], body: dict[str, object]
) -> None:
    _, adapter = directus
    request = bearer_webhook("/webhooks/directus", body, SECRET)
    assert await adapter.resolve_webhook(request) == ChangedKeys(everything=True)


async def test_a_forged_flow_is_rejected_before_any_lookup(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    from cms_adapters.errors import WebhookRejected

    vendor, adapter = directus
    request = bearer_webhook(
        "/webhooks/directus",
        {"event": "pages.items.update", "collection": "pages", "keys": ["1"]},
        "x" * 64,
    )
    with pytest.raises(WebhookRejected):
        await adapter.resolve_webhook(request)
    assert vendor.requests == []


async def test_blocks_follow_sort_then_creation_with_unsorted_rows_last(
    directus: tuple[FakeDirectus, DirectusAdapter],
) -> None:
    vendor, adapter = directus
    vendor.site["home"]["blocks"].append(
        {
            "blockId": "extra",
            "type": "banner",
            "variants": [{"variantId": "d", "fields": {"text": "x"}}],
        }
    )
    original = vendor._item

    def item(index: int, page: dict[str, object], status: str) -> dict[str, object]:
        data = original(index, page, status)
        if page["slug"] == "home":
            blocks = data["blocks"]
            assert isinstance(blocks, list)
            blocks[2]["sort"], blocks[1]["sort"] = 1, 2  # extra first, banner second
            # The database's own order means nothing (SQLite puts nulls first, Postgres last).
            data["blocks"] = [blocks[1], blocks[0], blocks[2]]
        return data

    vendor._item = item  # type: ignore[method-assign]
    parsed = await adapter.fetch_page("home")
    assert [block.id for block in parsed.page.blocks] == ["extra", "banner", "hero"]


async def test_a_duplicated_slug_is_named(directus: tuple[FakeDirectus, DirectusAdapter]) -> None:
    vendor, adapter = directus
    original = vendor.answer

    def answer(request: object) -> object:
        response = original(request)  # type: ignore[arg-type]
        body = response.json()
        if "filter[slug][_eq]" in request.url.params:  # type: ignore[attr-defined]
            body["data"] = body["data"] * 2
        import httpx

        return httpx.Response(200, json=body)

    vendor.answer = answer  # type: ignore[method-assign,assignment]
    with pytest.raises(MalformedContent) as info:
        await adapter.fetch_page("home")
    assert info.value.field == "slug"
    assert "more than one page" in str(info.value)


def test_the_directus_snapshot_is_a_real_export() -> None:
    snapshot = json.loads((REPO / "cms_adapters/directus/snapshot.json").read_text())
    assert snapshot["directus"].startswith("11.")
    names = {c["collection"] for c in snapshot["collections"]}
    assert names == {
        "pages",
        "pages_blocks",
        "blocks",
        "block_variants",
        "languages",
        "pages_translations",
        "block_variants_translations",
        "products",  # the catalogue recommendations draw from
    }
    for collection in snapshot["collections"]:
        # Keys a hand-trimmed snapshot lacked; without them a second apply deleted everything.
        assert {"accountability", "versioning", "collapse"} <= set(collection["meta"])
    for field in snapshot["fields"]:
        if field.get("schema") is not None:
            assert "is_indexed" in field["schema"], field["field"]


async def test_a_strapi_rename_names_the_slug_this_process_served() -> None:
    vendor = FakeStrapi()
    async with vendor.adapter() as adapter:
        assert isinstance(adapter, StrapiAdapter)
        await adapter.fetch_page("about")
        renamed = vendor.webhook("about")
        body = json.loads(renamed.body)
        body["entry"]["slug"] = "about-us"  # same documentId, new slug
        request = bearer_webhook("/webhooks/strapi", body, SECRET)
        assert adapter.parse_webhook(request) == ChangedKeys(pages=frozenset({"about", "about-us"}))
