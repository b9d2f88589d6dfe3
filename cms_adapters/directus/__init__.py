"""Directus over its REST items API, with deep field selection of a many-to-any block list.

A page is one `pages` item found by `filter[slug][_eq]`; its `blocks` field is
a many-to-any relation (junction `pages_blocks`: `collection`, `item`, `sort`)
to `blocks` items, whose one-to-many `variants` are `block_variants` items
(schema snapshot: `cms_adapters/directus/snapshot.json`, editor guide:
docs/cms/directus.md). Products for recommendations are `products` items
(`fetch_catalog`). Published means `status = published`; preview serves
the latest state of every item whatever its status. Translations use Directus'
translations interface: `pages.translations` (`languages_code`, `title`) become
the page's `titles`, `block_variants.translations` (`languages_code`, `fields`)
the variant's `localized` overrides.
"""

from __future__ import annotations

from typing import Any

from blocks.catalog import Catalog, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.errors import (
    CatalogNotConfigured,
    CMSUnauthorized,
    ContentNotFound,
    MalformedContent,
)
from cms_adapters.http import BearerHttpAdapter
from cms_adapters.mapping import as_object, to_parsed
from cms_adapters.webhooks import require_secret

PAGE_SIZE = 100
PAGE_FIELDS = ",".join(
    [
        "id",
        "slug",
        "title",
        "locales",
        "titles",
        "description",
        "translations.languages_code",
        "translations.title",
        "blocks.collection",
        "blocks.item:blocks.*",
        "blocks.item:blocks.variants.*",
        "blocks.item:blocks.variants.image.id",
        "blocks.item:blocks.variants.image.title",
        "blocks.item:blocks.variants.image.description",
        "blocks.item:blocks.variants.image.width",
        "blocks.item:blocks.variants.image.height",
        "blocks.item:blocks.variants.translations.languages_code",
        "blocks.item:blocks.variants.translations.fields",
    ]
)


PRODUCT_FIELDS = ",".join(
    [
        "sku",
        "name",
        "price",
        "currency",
        "category",
        "tags",
        "url",
        "brand",
        "description",
        "image.id",
        "image.title",
        "image.description",
        "image.width",
        "image.height",
    ]
)


class DirectusAdapter(BearerHttpAdapter):
    """Pages from a Directus project."""

    name = "directus"

    async def _items(self, params: dict[str, Any], entry: str) -> list[Any]:
        body = await self._get_json("/items/pages", params=params, entry=entry)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise MalformedContent(self.name, "not an items response", entry=entry, field="data")
        return list(body["data"])

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The `pages` item `slug` with its block list and variants, in one request."""
        params: dict[str, Any] = {
            "filter[slug][_eq]": slug,
            "fields": PAGE_FIELDS,
            "deep[blocks][_sort]": "sort",
            "limit": 1,
        }
        if not preview:
            params["filter[status][_eq]"] = "published"
        items = await self._items(params, entry=f"page {slug}")
        if not items:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        item = items[0]
        entry = f"pages/{item.get('id', slug)}"
        titles = _translations(item.get("translations"), "title")
        if titles:
            item = {**item, "titles": {**titles, **as_object(item.get("titles"))}}
        blocks = item.get("blocks")
        if isinstance(blocks, list):
            item = {**item, "blocks": [self._block(entry, i, b) for i, b in enumerate(blocks)]}
        return to_parsed(self.name, entry, item, slug)

    def _block(self, entry: str, index: int, junction: Any) -> Any:
        if not isinstance(junction, dict):
            return junction
        if junction.get("collection") != "blocks":
            raise MalformedContent(
                self.name,
                f"collection {junction.get('collection')!r} is not a block collection",
                entry=entry,
                field=f"blocks[{index}].collection",
            )
        block = junction.get("item")
        if not isinstance(block, dict) or not isinstance(block.get("variants"), list):
            return block
        return {**block, "variants": [self._variant(v) for v in block["variants"]]}

    def _variant(self, variant: Any) -> Any:
        if not isinstance(variant, dict):
            return variant
        localized = _translations(variant.get("translations"), "fields")
        if localized:
            variant = {**variant, "localized": {**localized, **as_object(variant.get("localized"))}}
        if not isinstance(variant.get("image"), dict):
            return variant
        file = variant["image"]
        image: dict[str, Any] = {
            "url": f"{self._url}/assets/{file.get('id')}",
            "alt": file.get("description") or file.get("title") or "",
        }
        image.update({k: file[k] for k in ("width", "height") if file.get(k)})
        return {**variant, "image": image}

    async def fetch_catalog(self) -> Catalog:
        """Every published `products` item, 100 per request, images as asset URLs."""
        documents: list[Any] = []
        offset = 0
        while True:
            params = {
                "fields": PRODUCT_FIELDS,
                "filter[status][_eq]": "published",
                "sort": "sku",
                "limit": PAGE_SIZE,
                "offset": offset,
            }
            try:
                body = await self._get_json("/items/products", params=params, entry="products")
            except (ContentNotFound, CMSUnauthorized) as exc:
                # Directus answers 403 for a collection that does not exist (or is not shared
                # with the token); a 401 is a bad token, and stays one.
                if isinstance(exc, CMSUnauthorized) and "HTTP 403" not in exc.message:
                    raise
                raise CatalogNotConfigured(self.name, exc.message) from None
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise MalformedContent(
                    self.name, "not an items response", entry="products", field="data"
                )
            documents += [self._variant(item) for item in data]
            if len(data) < PAGE_SIZE:
                return parse_catalog(documents, source=self.name, path="products")
            offset += PAGE_SIZE

    async def list_pages(self) -> list[str]:
        """Every published page slug, 100 per request."""
        slugs: list[str] = []
        offset = 0
        while True:
            params = {
                "fields": "slug",
                "filter[status][_eq]": "published",
                "sort": "slug",
                "limit": PAGE_SIZE,
                "offset": offset,
            }
            items = await self._items(params, entry="pages")
            slugs += [
                i["slug"] for i in items if isinstance(i, dict) and isinstance(i.get("slug"), str)
            ]
            if len(items) < PAGE_SIZE:
                return sorted(slugs)
            offset += PAGE_SIZE

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Check the flow's `Authorization: Bearer` header, then map the event payload."""
        require_secret(
            self.name, request.bearer_token(), self._webhook_secret, "Authorization bearer token"
        )
        event = request.json(self.name)
        payload = as_object(event.get("payload"))
        collection = event.get("collection")
        if collection == "pages" and isinstance(payload.get("slug"), str) and payload["slug"]:
            return ChangedKeys(pages=frozenset({payload["slug"]}))
        if (
            collection == "blocks"
            and isinstance(payload.get("blockId"), str)
            and payload["blockId"]
        ):
            return ChangedKeys(blocks=frozenset({payload["blockId"]}))
        return ChangedKeys(everything=True)


def _translations(rows: Any, name: str) -> dict[str, Any]:
    """`[{languages_code, <name>}]` from a translations field, as `{code: value}`."""
    if not isinstance(rows, list):
        return {}
    return {
        row["languages_code"]: row[name]
        for row in rows
        if isinstance(row, dict)
        and isinstance(row.get("languages_code"), str)
        and row.get(name) not in (None, "")
    }
