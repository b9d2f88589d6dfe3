"""The contract every CMS adapter passes: filesystem, Contentful, Strapi, Sanity, Directus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cms_adapters.base import ChangedKeys, CMSAdapter
from cms_adapters.errors import (
    CatalogNotConfigured,
    ContentNotFound,
    MalformedContent,
    WebhookRejected,
)
from tests.cms.vendors import HTTP_VENDORS, FakeFilesystem, FakeVendor

VENDORS = ["filesystem", *HTTP_VENDORS]


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest, tmp_path: Path) -> FakeVendor:
    if request.param == "filesystem":
        return FakeFilesystem(tmp_path / "content")
    return HTTP_VENDORS[request.param]()


@pytest.fixture
async def adapter(vendor: FakeVendor) -> AsyncIterator[CMSAdapter]:
    async with vendor.adapter() as adapter:
        yield adapter


async def test_name_matches_the_cms_setting(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    assert adapter.name == vendor.name


async def test_fetch_page_maps_blocks_variants_and_editor_metadata(adapter: CMSAdapter) -> None:
    parsed = await adapter.fetch_page("home")
    page = parsed.page
    assert parsed.problems == ()
    assert (page.slug, page.title, page.locales) == ("home", "Home", ("en-US", "de-DE"))
    assert page.titles == {"de-DE": "Startseite"}
    assert [block.id for block in page.blocks] == ["hero", "banner"]
    hero, banner = page.blocks
    assert hero.type == "hero"
    assert [variant.id for variant in hero.variants] == ["vip", "default"]
    vip, default = hero.variants
    assert vip.audiences == ("high_value",)
    assert vip.priority == 10
    assert vip.tags == ("loyalty",)
    assert vip.fields["heading"] == "Members' early access"
    assert default.default is True
    assert default.localized == {"de-DE": {"heading": "Willkommen"}}
    sale = banner.variants[0]
    assert sale.condition is not None
    assert sale.condition.valid
    assert sale.schedule is not None
    assert sale.schedule.start == datetime(2026, 11, 27, tzinfo=ZoneInfo("Europe/Berlin"))


async def test_unknown_slug_is_content_not_found_naming_cms_and_entry(
    adapter: CMSAdapter,
) -> None:
    with pytest.raises(ContentNotFound) as info:
        await adapter.fetch_page("no-such-page")
    assert info.value.cms == adapter.name
    assert info.value.entry == "no-such-page"
    assert adapter.name in str(info.value)


async def test_preview_serves_drafts_and_published_stays_published(adapter: CMSAdapter) -> None:
    assert (await adapter.fetch_page("home", preview=True)).page.title == "Home (draft)"
    assert (await adapter.fetch_page("home")).page.title == "Home"


async def test_list_pages_walks_every_page(
    adapter: CMSAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = type(adapter).__module__
    if hasattr(__import__(module, fromlist=["PAGE_SIZE"]), "PAGE_SIZE"):
        monkeypatch.setattr(f"{module}.PAGE_SIZE", 2)  # force pagination over the 3 pages
    assert await adapter.list_pages() == ["about", "home", "outdoor"]


async def test_malformed_content_names_cms_entry_and_field(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    vendor.broken_field("about")
    vendor.sync()
    with pytest.raises(MalformedContent) as info:
        await adapter.fetch_page("about")
    assert info.value.cms == adapter.name
    assert info.value.entry
    assert info.value.field == "title"


async def test_a_publish_webhook_names_the_page(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    assert adapter.parse_webhook(vendor.webhook("home")) == ChangedKeys(pages=frozenset({"home"}))


async def test_a_forged_webhook_is_rejected(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    with pytest.raises(WebhookRejected):
        adapter.parse_webhook(vendor.webhook("home", secret="x" * 64))
    with pytest.raises(WebhookRejected):
        adapter.parse_webhook(vendor.webhook_without_credentials("home"))


async def test_a_tampered_webhook_body_is_rejected_where_bodies_are_signed(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    request = vendor.webhook("home")
    tampered = type(request)(
        request.method, request.path, request.headers, request.body.replace(b"home", b"about")
    )
    if vendor.name in ("contentful", "sanity"):
        with pytest.raises(WebhookRejected):
            adapter.parse_webhook(tampered)
    else:  # shared-secret schemes authenticate the sender, not the body
        assert adapter.parse_webhook(tampered) == ChangedKeys(pages=frozenset({"about"}))


async def test_the_catalogue_maps_products_and_names_the_bad_ones(
    vendor: FakeVendor, adapter: CMSAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = type(adapter).__module__
    if hasattr(__import__(module, fromlist=["PAGE_SIZE"]), "PAGE_SIZE"):
        monkeypatch.setattr(f"{module}.PAGE_SIZE", 2)  # force pagination over 3 products
    catalog = await adapter.fetch_catalog()
    assert catalog.source == adapter.name
    assert sorted(catalog.skus) == ["ROPE-9", "TENT-2P"]
    tent = catalog.get("TENT-2P")
    assert tent is not None
    assert (tent.name, tent.price, tent.currency, tent.category) == (
        "Ridgeline 2P Tent",
        329.0,
        "USD",
        "outdoor",
    )
    assert (tent.tags, tent.url, tent.brand) == (("tent", "camping"), "/p/tent-2p", "Ridgeline")
    assert tent.description == "Two people, three seasons."
    assert tent.image is not None
    assert tent.image["url"].startswith(("/img/", "https://", "http://"))
    assert tent.image["alt"] == "Ridgeline 2P Tent"
    rope = catalog.get("ROPE-9")
    assert rope is not None
    assert (rope.category, rope.tags, rope.image, rope.currency) == (
        "climbing",
        ("rope",),
        None,
        "USD",
    )
    assert catalog.by_url("/p/rope-9") is rope
    [problem] = catalog.problems
    assert problem.path.endswith(".price")
    assert "greater than or equal to 0" in problem.message


async def test_a_cms_without_products_says_so(vendor: FakeVendor, adapter: CMSAdapter) -> None:
    vendor.catalog = False
    vendor.sync()
    if vendor.name == "sanity":
        # GROQ finds no product document: a catalogue, empty.
        assert len(await adapter.fetch_catalog()) == 0
        return
    with pytest.raises(CatalogNotConfigured) as info:
        await adapter.fetch_catalog()
    assert info.value.cms == adapter.name
