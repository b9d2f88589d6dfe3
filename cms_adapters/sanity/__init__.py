"""Sanity over the HTTP query API: one GROQ query per page, references resolved by projection.

A page is one `page` document found by `slug.current`; its `blocks` array
references `tesseraBlock` documents (`->`; Sanity reserves the name `block`),
whose `variants` are inline `variant` objects (schema:
`cms_adapters/sanity/schema.js`, editor guide: docs/cms/sanity.md). Products
for recommendations are `product` documents (`fetch_catalog`). Drafts come
from `perspective=drafts`, which needs a token with read access.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from blocks.catalog import Catalog, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.errors import ContentNotFound, MalformedContent
from cms_adapters.http import HttpAdapter, Sleep
from cms_adapters.mapping import to_parsed
from cms_adapters.webhooks import verify_sanity

API_VERSION = "v2025-02-19"
PAGE_SIZE = 1000
PAGE_QUERY = (
    '*[_type == "page" && slug.current == $slug][0]{'
    '_id, "slug": slug.current, title, locales, titles, description, '
    '"blocks": blocks[]->{_id, blockId, type, "variants": variants[]{..., '
    '"image": select(defined(image.asset) => {"url": image.asset->url, "alt": image.alt, '
    '"width": image.asset->metadata.dimensions.width, '
    '"height": image.asset->metadata.dimensions.height})}}}'
)
PRODUCTS_QUERY = (
    '*[_type == "product" && defined(sku)] | order(sku asc)[$start...$end]{'
    "sku, name, price, currency, category, tags, url, brand, description, "
    '"image": select(defined(image.asset) => {"url": image.asset->url, "alt": image.alt, '
    '"width": image.asset->metadata.dimensions.width, '
    '"height": image.asset->metadata.dimensions.height})}'
)
SLUGS_QUERY = (
    '*[_type == "page" && defined(slug.current)] | order(slug.current asc)'
    "[$start...$end].slug.current"
)


class SanityAdapter(HttpAdapter):
    """Pages from one Sanity project and dataset."""

    name = "sanity"

    def __init__(
        self,
        project_id: str,
        dataset: str,
        *,
        token: str = "",
        api_version: str = API_VERSION,
        webhook_secret: str = "",
        base_url: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        super().__init__(
            base_url or f"https://{project_id}.api.sanity.io",
            headers={"Authorization": f"Bearer {token}"} if token else None,
            timeout=timeout,
            retries=retries,
            transport=transport,
            **extra,
        )
        self._path = f"/{api_version}/data/query/{dataset}"
        self._webhook_secret = webhook_secret

    async def _query(self, query: str, params: dict[str, Any], perspective: str, entry: str) -> Any:
        arguments = {"query": query, "perspective": perspective}
        arguments.update({f"${name}": json.dumps(value) for name, value in params.items()})
        body = await self._get_json(self._path, params=arguments, entry=entry)
        if not isinstance(body, dict) or "result" not in body:
            raise MalformedContent(
                self.name, "no result in the query response", entry=entry, field="result"
            )
        return body["result"]

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The page document `slug` with its referenced blocks, via one GROQ query."""
        perspective = "drafts" if preview else "published"
        result = await self._query(PAGE_QUERY, {"slug": slug}, perspective, f"page {slug}")
        if result is None:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        if not isinstance(result, dict):
            raise MalformedContent(
                self.name, "the page is not an object", entry=slug, field="result"
            )
        entry = f"page {result.get('_id', slug)}"
        blocks = result.get("blocks")
        if isinstance(blocks, list):
            # A reference to a missing (deleted, unpublished) block projects to null.
            result = {**result, "blocks": [block for block in blocks if block is not None]}
        return to_parsed(self.name, entry, result, slug)

    async def fetch_catalog(self) -> Catalog:
        """Every published `product` document, 1000 per query."""
        documents: list[Any] = []
        start = 0
        while True:
            params = {"start": start, "end": start + PAGE_SIZE}
            result = await self._query(PRODUCTS_QUERY, params, "published", "products")
            if not isinstance(result, list):
                raise MalformedContent(
                    self.name, "the products are not a list", entry="products", field="result"
                )
            documents += result
            if len(result) < PAGE_SIZE:
                return parse_catalog(documents, source=self.name, path="products")
            start += PAGE_SIZE

    async def list_pages(self) -> list[str]:
        """Every page slug, 1000 per query."""
        slugs: list[str] = []
        start = 0
        while True:
            params = {"start": start, "end": start + PAGE_SIZE}
            result = await self._query(SLUGS_QUERY, params, "published", "pages")
            if not isinstance(result, list):
                raise MalformedContent(
                    self.name, "slugs are not a list", entry="pages", field="result"
                )
            slugs += [slug for slug in result if isinstance(slug, str)]
            if len(result) < PAGE_SIZE:
                return sorted(slugs)
            start += PAGE_SIZE

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Verify `sanity-webhook-signature`, then map the projected document."""
        verify_sanity(request, self._webhook_secret, now=request.received_at or time.time())
        payload = request.json(self.name)
        kind = payload.get("_type")
        if kind == "page" and isinstance(payload.get("slug"), str) and payload["slug"]:
            return ChangedKeys(pages=frozenset({payload["slug"]}))
        # `block` was the type's name before Sanity's schema validation refused it.
        if (
            kind in ("tesseraBlock", "block")
            and isinstance(payload.get("blockId"), str)
            and payload["blockId"]
        ):
            return ChangedKeys(blocks=frozenset({payload["blockId"]}))
        return ChangedKeys(everything=True)
