"""Strapi v5 over its REST API (flattened `data`, `documentId`, draft & publish).

A page is one `page` document found by `filters[slug][$eq]`; its `blocks`
dynamic zone holds `tessera.block` components whose repeatable `variants`
are `tessera.variant` components (schemas under `cms_adapters/strapi/schema/`,
editor guide: docs/cms/strapi.md). Products for recommendations are `product`
documents (`fetch_catalog`). `populate` fetches the zone, the variants
and their `image` media in one request; `status=draft` serves drafts.

Locales: Strapi 5 returns one locale per request (`locale=all` is gone). The
page's `locales` field lists Tessera locale codes; the first is served from
the default Strapi locale, each other one is requested with `locale=<code>`
(concurrently) and becomes the page's `titles` entry and, matched by
`blockId`/`variantId`, the variants' `localized` overrides. A locale that is
not translated yet is skipped.

Webhooks: Strapi sends the whole entry, so an `entry.*` event on `page`
names `entry.slug`. A rename names the old slug too, when this process
served the document under it (the adapter remembers `documentId` -> slug of
every page it fetched); events on media or other models name every page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from blocks.catalog import Catalog, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.errors import CatalogNotConfigured, ContentNotFound, MalformedContent
from cms_adapters.http import BearerHttpAdapter
from cms_adapters.mapping import as_object, to_parsed
from cms_adapters.webhooks import require_secret

PAGE_SIZE = 100
_POPULATE = "populate[blocks][on][tessera.block][populate][variants][populate]"


class StrapiAdapter(BearerHttpAdapter):
    """Pages from a Strapi v5 server."""

    name = "strapi"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: documentId -> the slug this process last served it under (to purge renames).
        self._served: dict[str, str] = {}

    async def _pages(self, params: dict[str, Any], entry: str) -> dict[str, Any]:
        body = await self._get_json("/api/pages", params=params, entry=entry)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise MalformedContent(
                self.name, "not a collection response", entry=entry, field="data"
            )
        return body

    async def _document(
        self, slug: str, preview: bool, locale: str | None = None
    ) -> dict[str, Any] | None:
        params: dict[str, Any] = {
            "filters[slug][$eq]": slug,
            _POPULATE: "image",
            "status": "draft" if preview else "published",
            "pagination[pageSize]": 1,
        }
        if locale is not None:
            params["locale"] = locale
        body = await self._pages(params, entry=f"page {slug}")
        data = body["data"]
        return data[0] if data and isinstance(data[0], dict) else None

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The page document `slug` with its block zone, variants and images populated."""
        document = await self._document(slug, preview)
        if document is None:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        entry = f"page {document.get('documentId', '?')}"
        if isinstance(document.get("documentId"), str) and not preview:
            self._served[document["documentId"]] = slug
        locales = document.get("locales")
        others = (
            [code for code in locales[1:] if isinstance(code, str) and code]
            if isinstance(locales, list)
            else []
        )
        if others:
            translations = await asyncio.gather(
                *(self._document(slug, preview, code) for code in others)
            )
            document = _merge_locales(document, dict(zip(others, translations, strict=True)))
        blocks = document.get("blocks")
        if isinstance(blocks, list):
            document = {**document, "blocks": [self._block(block) for block in blocks]}
        return to_parsed(self.name, entry, document, slug)

    def _block(self, block: Any) -> Any:
        if not isinstance(block, dict) or not isinstance(block.get("variants"), list):
            return block
        return {**block, "variants": [self._variant(v) for v in block["variants"]]}

    def _variant(self, variant: Any) -> Any:
        if not isinstance(variant, dict) or not isinstance(variant.get("image"), Mapping):
            return variant
        media = variant["image"]
        url = str(media.get("url", ""))
        image: dict[str, Any] = {
            "url": f"{self._url}{url}" if url.startswith("/") else url,
            "alt": media.get("alternativeText") or media.get("name") or "",
        }
        image.update({k: media[k] for k in ("width", "height") if media.get(k)})
        return {**variant, "image": image}

    async def fetch_catalog(self) -> Catalog:
        """Every published `product` document (`/api/products`), its `image` populated."""
        documents: list[Any] = []
        page = 1
        while True:
            params = {
                "populate": "image",
                "sort": "sku:asc",
                "pagination[page]": page,
                "pagination[pageSize]": PAGE_SIZE,
            }
            try:
                body = await self._get_json("/api/products", params=params, entry="products")
            except ContentNotFound:
                raise CatalogNotConfigured(self.name, "no product collection type") from None
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise MalformedContent(
                    self.name, "not a collection response", entry="products", field="data"
                )
            documents += [self._variant(item) for item in data]
            pagination = ((body.get("meta") or {}).get("pagination")) or {}
            if page >= int(pagination.get("pageCount", page)):
                return parse_catalog(documents, source=self.name, path="products")
            page += 1

    async def list_pages(self) -> list[str]:
        """Every published page slug, page by page."""
        slugs: list[str] = []
        page = 1
        while True:
            params = {
                "fields[0]": "slug",
                "sort": "slug:asc",
                "pagination[page]": page,
                "pagination[pageSize]": PAGE_SIZE,
            }
            body = await self._pages(params, entry="pages")
            slugs += [d["slug"] for d in body["data"] if isinstance(d.get("slug"), str)]
            pagination = ((body.get("meta") or {}).get("pagination")) or {}
            if page >= int(pagination.get("pageCount", page)):
                return sorted(slugs)
            page += 1

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Check the `Authorization: Bearer` header set on the webhook, then map the entry."""
        require_secret(
            self.name, request.bearer_token(), self._webhook_secret, "Authorization bearer token"
        )
        payload = request.json(self.name)
        entry = as_object(payload.get("entry"))
        model = payload.get("model")
        if model == "page" and isinstance(entry.get("slug"), str) and entry["slug"]:
            slugs = {entry["slug"]}
            old = self._served.get(str(entry.get("documentId")))
            if old is not None:
                slugs.add(old)  # renamed: the old slug's cached page must go too
            return ChangedKeys(pages=frozenset(slugs))
        return ChangedKeys(everything=True)


def _variants_by_id(document: Mapping[str, Any]) -> dict[tuple[Any, Any], Any]:
    found: dict[tuple[Any, Any], Any] = {}
    for block in document.get("blocks") or []:
        if isinstance(block, dict):
            for variant in block.get("variants") or []:
                if isinstance(variant, dict):
                    found[(block.get("blockId"), variant.get("variantId"))] = variant.get("fields")
    return found


def _merge_locales(
    document: dict[str, Any], translations: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """Fold other locales' titles and variant fields into `titles` and `localized`."""
    original = document.get("titles")
    titles = dict(original) if isinstance(original, dict) else {}
    localized: dict[tuple[Any, Any], dict[str, Any]] = {}
    for code, translated in translations.items():
        if translated is None:
            continue
        if isinstance(translated.get("title"), str):
            titles.setdefault(code, translated["title"])
        for key, fields in _variants_by_id(translated).items():
            if isinstance(fields, dict):
                localized.setdefault(key, {})[code] = fields
    blocks = []
    for block in document.get("blocks") or []:
        if isinstance(block, dict) and isinstance(block.get("variants"), list):
            variants = []
            for variant in block["variants"]:
                key = (block.get("blockId"), as_object(variant).get("variantId"))
                if isinstance(variant, dict) and key in localized:
                    variant = {
                        **variant,
                        "localized": {**localized[key], **as_object(variant.get("localized"))},
                    }
                variants.append(variant)
            block = {**block, "variants": variants}
        blocks.append(block)
    merged = {**document, "blocks": blocks}
    if original is None or isinstance(original, dict):
        merged["titles"] = titles
    return merged
