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

Order: blocks follow the junction's `sort` (what editors drag), then its
`id`; rows without a `sort` (created through the API) come after the sorted
ones, in the order they were added. Variants likewise by `sort`, then `id`.
The order is applied here, so it does not depend on how the database sorts
nulls.

Webhooks: a Flow sends `{{$trigger}}`, whose update payload carries only the
changed fields and the item keys. `resolve_webhook` asks Directus which
pages the changed items are on (pages by id, blocks through the junction,
variants through their block, translations through their parent) and names
exactly those; a slug rename or a deletion also names the old slug, read from
the item's revisions. When the lookup fails it falls back to every page.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from blocks.catalog import Catalog, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.errors import (
    CatalogNotConfigured,
    CMSError,
    CMSUnauthorized,
    ContentNotFound,
    MalformedContent,
)
from cms_adapters.http import BearerHttpAdapter
from cms_adapters.mapping import as_object, to_parsed
from cms_adapters.webhooks import require_secret

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
#: More changed keys than this in one event invalidate every page instead.
MAX_WEBHOOK_KEYS = 100
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
        "blocks.id",
        "blocks.sort",
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

    async def _items(
        self, params: dict[str, Any], entry: str, path: str = "/items/pages"
    ) -> list[Any]:
        body = await self._get_json(path, params=params, entry=entry)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise MalformedContent(self.name, "not an items response", entry=entry, field="data")
        return list(body["data"])

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The `pages` item `slug` with its block list and variants, in one request."""
        params: dict[str, Any] = {
            "filter[slug][_eq]": slug,
            "fields": PAGE_FIELDS,
            "deep[blocks][_sort]": "sort,id",
            # Two, to notice a duplicated slug (SQLite snapshots cannot keep it unique).
            "limit": 2,
        }
        if not preview:
            params["filter[status][_eq]"] = "published"
        items = await self._items(params, entry=f"page {slug}")
        if not items:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        item = items[0]
        entry = f"pages/{item.get('id', slug)}"
        if len(items) > 1:
            ids = ", ".join(str(i.get("id")) for i in items if isinstance(i, dict))
            raise MalformedContent(
                self.name,
                f"more than one page has slug {slug!r} (ids {ids})",
                entry=entry,
                field="slug",
            )
        titles = _translations(item.get("translations"), "title")
        if titles:
            item = {**item, "titles": {**titles, **as_object(item.get("titles"))}}
        blocks = item.get("blocks")
        if isinstance(blocks, list):
            rows = _in_order(blocks)
            item = {**item, "blocks": [self._block(entry, i, b) for i, b in enumerate(rows)]}
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
        return {**block, "variants": [self._variant(v) for v in _in_order(block["variants"])]}

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

    async def resolve_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Authenticate, then look the changed items up and name exactly their pages."""
        changed = self.parse_webhook(request)
        event = request.json(self.name)
        try:
            slugs = await self._affected_slugs(event)
        except CMSError as exc:
            logger.warning("directus webhook: cannot resolve %s (%s); every page", event, exc)
            return ChangedKeys(everything=True)
        if slugs is None:
            return changed
        return ChangedKeys(pages=frozenset(slugs) | changed.pages)

    async def _affected_slugs(self, event: dict[str, Any]) -> set[str] | None:
        """The slugs an event touches; None when it cannot be narrowed down."""
        collection = event.get("collection")
        action = str(event.get("event", "")).rpartition(".")[2]
        payload = event.get("payload")
        keys = _event_keys(event)
        if not keys or len(keys) > MAX_WEBHOOK_KEYS or action not in _ACTIONS:
            return None
        gone = action == "delete"
        fields = as_object(payload)
        if collection == "pages":
            slugs = await self._page_slugs(keys)
            if gone or "slug" in fields:
                # The old slug is only in the item's history: a rename or a deletion.
                slugs |= {str(s) for s in await self._history(collection, keys, "slug") if s}
            return slugs
        if collection == "blocks":
            return await self._block_slugs(keys)
        if collection == "block_variants":
            blocks = await self._column(collection, keys, "block", gone)
            return await self._block_slugs(blocks)
        if collection in ("pages_blocks", "pages_translations"):
            return await self._page_slugs(await self._column(collection, keys, "pages_id", gone))
        if collection == "block_variants_translations":
            variants = await self._column(collection, keys, "block_variants_id", gone)
            blocks = await self._column("block_variants", variants, "block", False)
            return await self._block_slugs(blocks)
        return None

    async def _column(self, collection: str, keys: list[str], field: str, gone: bool) -> list[str]:
        """`field` of the items `keys` (from their history when they were deleted)."""
        if not keys:
            return []
        if gone:
            values = await self._history(collection, keys, field)
        else:
            rows = await self._items(
                {"filter[id][_in]": ",".join(keys), "fields": field, "limit": len(keys)},
                entry=f"{collection} {','.join(keys)}",
                path=f"/items/{collection}",
            )
            values = [as_object(row).get(field) for row in rows]
        return sorted({str(v) for v in values if isinstance(v, int | str) and v != ""})

    async def _page_slugs(self, ids: list[str]) -> set[str]:
        """Current slugs of the pages `ids`, whatever their status."""
        if not ids:
            return set()
        rows = await self._items(
            {"filter[id][_in]": ",".join(ids), "fields": "slug", "limit": len(ids)},
            entry=f"pages {','.join(ids)}",
        )
        return {row["slug"] for row in rows if isinstance(as_object(row).get("slug"), str)}

    async def _block_slugs(self, blocks: list[str]) -> set[str]:
        """Slugs of every page whose block list holds one of `blocks`."""
        if not blocks:
            return set()
        rows = await self._items(
            {
                "filter[collection][_eq]": "blocks",
                "filter[item][_in]": ",".join(blocks),
                "fields": "pages_id.slug",
                "limit": -1,
            },
            entry=f"blocks {','.join(blocks)}",
            path="/items/pages_blocks",
        )
        slugs = (as_object(as_object(row).get("pages_id")).get("slug") for row in rows)
        return {slug for slug in slugs if isinstance(slug, str)}

    async def _history(self, collection: str, keys: list[str], field: str) -> list[Any]:
        """`field` in the two latest revisions of each item: its value before and after."""

        async def one(key: str) -> list[Any]:
            rows = await self._items(
                {
                    "filter[collection][_eq]": collection,
                    "filter[item][_eq]": key,
                    "fields": "data",
                    "sort": "-id",
                    "limit": 2,
                },
                entry=f"revisions of {collection}/{key}",
                path="/revisions",
            )
            return [as_object(as_object(row).get("data")).get(field) for row in rows]

        found = await asyncio.gather(*(one(key) for key in keys))
        return [value for values in found for value in values]


_ACTIONS = ("create", "update", "delete")


def _event_keys(event: dict[str, Any]) -> list[str]:
    """The item keys of a Flow's `$trigger`: `keys`, `key`, or a delete's payload list."""
    keys: Any = event.get("keys")
    if keys is None and "key" in event:
        keys = [event["key"]]
    if keys is None and isinstance(event.get("payload"), list):
        keys = event["payload"]
    if not isinstance(keys, list):
        return []
    return sorted({str(k) for k in keys if isinstance(k, int | str) and not isinstance(k, bool)})


def _in_order(rows: list[Any]) -> list[Any]:
    """Rows by `sort`, then `id`; rows without a `sort` after the others."""

    def number(value: Any) -> float | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None

    def key(row: Any) -> tuple[bool, float, float]:
        fields = as_object(row)
        sort, ident = number(fields.get("sort")), number(fields.get("id"))
        return (sort is None, sort or 0.0, ident or 0.0)

    return sorted(rows, key=key)


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
