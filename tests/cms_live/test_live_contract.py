"""The adapter contract suite (tests/cms/test_adapter_contract.py) against live Directus and Strapi.

The contract's tests are imported as they are; only the `vendor` fixture
changes, to the live servers. Preview differs by CMS: Strapi keeps a draft
of a published page (the contract's own test runs), while a Directus item
has one state, so preview there means "drafts are visible too".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cms_adapters.base import CMSAdapter
from cms_adapters.errors import ContentNotFound
from tests.cms import test_adapter_contract as contract
from tests.cms.vendors import FakeVendor
from tests.cms_live.directus_setup import create_page, delete_page
from tests.cms_live.vendors import LiveDirectus, LiveStrapi

pytestmark = pytest.mark.slow

adapter = contract.adapter
test_name_matches_the_cms_setting = contract.test_name_matches_the_cms_setting
test_fetch_page_maps_blocks_variants_and_editor_metadata = (
    contract.test_fetch_page_maps_blocks_variants_and_editor_metadata
)
test_unknown_slug_is_content_not_found_naming_cms_and_entry = (
    contract.test_unknown_slug_is_content_not_found_naming_cms_and_entry
)
test_list_pages_walks_every_page = contract.test_list_pages_walks_every_page
test_malformed_content_names_cms_entry_and_field = (
    contract.test_malformed_content_names_cms_entry_and_field
)
test_a_publish_webhook_names_the_page = contract.test_a_publish_webhook_names_the_page
test_a_forged_webhook_is_rejected = contract.test_a_forged_webhook_is_rejected
test_a_tampered_webhook_body_is_rejected_where_bodies_are_signed = (
    contract.test_a_tampered_webhook_body_is_rejected_where_bodies_are_signed
)


@pytest.fixture(params=["directus", "strapi"])
def vendor(request: pytest.FixtureRequest) -> Iterator[FakeVendor]:
    """A live CMS behind the contract's vendor interface; its edits undone afterwards."""
    live: LiveDirectus | LiveStrapi
    if request.param == "directus":
        live = LiveDirectus(request.getfixturevalue("directus_site"))
    else:
        live = LiveStrapi(request.getfixturevalue("strapi_site"))
    try:
        yield live
    finally:
        live.restore()


async def test_preview_serves_drafts_and_published_stays_published(
    vendor: FakeVendor, adapter: CMSAdapter
) -> None:
    if isinstance(vendor, LiveStrapi):
        await contract.test_preview_serves_drafts_and_published_stays_published(adapter)
        return
    assert isinstance(vendor, LiveDirectus)
    variant = {"variantId": "a", "fields": {"text": "Soon"}}
    page = {
        "title": "Spring (draft)",
        "blocks": [{"blockId": "spring", "type": "banner", "variants": [variant]}],
    }
    create_page(vendor.live, "spring", page, status="draft")
    try:
        assert (await adapter.fetch_page("spring", preview=True)).page.title == "Spring (draft)"
        with pytest.raises(ContentNotFound):
            await adapter.fetch_page("spring")
        assert "spring" not in await adapter.list_pages()
    finally:
        delete_page(vendor.live, "spring")
