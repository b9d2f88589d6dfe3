"""The live servers behind the adapter contract's `FakeVendor` interface.

`tests/cms/test_adapter_contract.py` asks a vendor for an adapter, to break a
page's title (`broken_field` + `sync`) and for webhook requests; these
classes do that against the live Directus and Strapi. Edits are undone by
`restore()` after each test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cms_adapters.base import CMSAdapter, WebhookRequest
from cms_adapters.directus import DirectusAdapter
from cms_adapters.strapi import StrapiAdapter
from tests.cms.vendors import SECRET, FakeVendor, bearer_webhook
from tests.cms_live.directus_setup import DirectusSite
from tests.cms_live.strapi_setup import StrapiSite


class LiveDirectus(FakeVendor):
    """The live Directus: adapter with Tessera's token, edits through the admin API."""

    name = "directus"

    def __init__(self, live: DirectusSite) -> None:
        super().__init__()
        self.live = live
        self.undo: list[Callable[[], None]] = []

    def adapter(self) -> CMSAdapter:
        """An adapter with the token the guide gives Tessera."""
        return DirectusAdapter(self.live.url, self.live.token, webhook_secret=SECRET)

    def broken_field(self, slug: str) -> None:
        """Empty the page's title (Directus stores what it is given, as an editor might)."""
        before = self.live.page(slug)["title"]
        self.live.update("pages", self.live.page_ids[slug], {"title": ""})
        self.undo.append(
            lambda: self.live.update("pages", self.live.page_ids[slug], {"title": before})
        )

    def restore(self) -> None:
        """Undo this test's edits."""
        while self.undo:
            self.undo.pop()()

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        """The body the guide's Flow sends (`{{$trigger}}`) for a saved page with a slug."""
        body: dict[str, Any] = {
            "event": "pages.items.update",
            "payload": {"slug": slug},
            "keys": [str(self.live.page_ids.get(slug, 0))],
            "collection": "pages",
        }
        return bearer_webhook("/webhooks/directus", body, secret)


class LiveStrapi(FakeVendor):
    """The live Strapi: adapter with the read-only token, edits with the editor token."""

    name = "strapi"

    def __init__(self, live: StrapiSite) -> None:
        super().__init__()
        self.live = live
        self.undo: list[Callable[[], object]] = []

    def adapter(self) -> CMSAdapter:
        """An adapter with the token the guide gives Tessera (find and findOne on Page)."""
        return StrapiAdapter(self.live.url, self.live.token, webhook_secret=SECRET)

    def broken_field(self, slug: str) -> None:
        """Publish an empty title: Strapi's REST validation lets it through, Tessera refuses it."""
        self.live.update(slug, {"title": ""})
        title = self.site[slug]["title"]
        self.undo.append(lambda: self.live.update(slug, {"title": title}))

    def restore(self) -> None:
        """Undo this test's edits."""
        while self.undo:
            self.undo.pop()()

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        """The body Strapi's webhook sends for a published page."""
        body = {
            "event": "entry.publish",
            "createdAt": "2026-11-22T10:00:00.000Z",
            "model": "page",
            "uid": "api::page.page",
            "entry": {
                "id": 1,
                "documentId": self.live.documents.get(slug, "unknown"),
                "slug": slug,
                "locale": "en",
            },
        }
        return bearer_webhook("/webhooks/strapi", json.loads(json.dumps(body)), secret)
