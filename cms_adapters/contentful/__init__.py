"""Contentful over the Content Delivery API (published) and the Content Preview API (drafts).

A page is one `page` entry found by `fields.slug`; its `blocks` link `block`
entries, whose `variants` link `variant` entries (content model:
`cms_adapters/contentful/content-model.json`, editor guide: docs/cms/contentful.md).
Links are resolved from the response's `includes` (`include=3`); links
Contentful leaves out (unpublished or deleted entries) are skipped, as the
Delivery API itself does. Assets become images `{url, alt, width, height}`.

Products for recommendations are `product` entries (`fetch_catalog`).

Entries are fetched with `locale=*`, so one request brings every locale: each
field is read in the space's default locale (asked once from `/locales`),
a page's other `title` locales become `titles`, and a variant's other
`fields` locales become its `localized` overrides.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from blocks.catalog import Catalog, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import ChangedKeys, WebhookRequest
from cms_adapters.errors import CatalogNotConfigured, ContentNotFound, MalformedContent
from cms_adapters.http import HttpAdapter, Sleep
from cms_adapters.mapping import as_object, to_parsed
from cms_adapters.webhooks import verify_contentful

CDA_URL = "https://cdn.contentful.com"
CPA_URL = "https://preview.contentful.com"
PAGE_SIZE = 1000
_MAX_DEPTH = 6


class ContentfulAdapter(HttpAdapter):
    """Pages from one Contentful space and environment."""

    name = "contentful"

    def __init__(
        self,
        space_id: str,
        access_token: str,
        *,
        preview_token: str = "",
        environment: str = "master",
        webhook_secret: str = "",
        delivery_url: str = CDA_URL,
        preview_url: str = CPA_URL,
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        super().__init__(
            delivery_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
            retries=retries,
            transport=transport,
            **extra,
        )
        self._base = f"/spaces/{space_id}/environments/{environment}"
        self._preview_url = preview_url.rstrip("/")
        self._preview_token = preview_token
        self._webhook_secret = webhook_secret
        self._default_locale: str | None = None

    async def default_locale(self) -> str:
        """The space's default locale code (asked once, then remembered)."""
        if self._default_locale is None:
            body = await self._get_json(f"{self._base}/locales", entry="locales")
            items = body.get("items") if isinstance(body, dict) else None
            codes = [
                item.get("code")
                for item in items or []
                if isinstance(item, dict) and item.get("default") is True
            ]
            if not codes or not isinstance(codes[0], str):
                raise MalformedContent(
                    self.name, "no default locale in /locales", entry="locales", field="items"
                )
            self._default_locale = codes[0]
        return self._default_locale

    async def _entries(self, params: dict[str, Any], *, preview: bool, entry: str) -> Any:
        path = f"{self._base}/entries"
        headers = None
        if preview:
            path = f"{self._preview_url}{path}"
            headers = {"Authorization": f"Bearer {self._preview_token}"}
        body = await self._get_json(path, params=params, headers=headers, entry=entry)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise MalformedContent(
                self.name, "not an entries collection", entry=entry, field="items"
            )
        return body

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """The `page` entry whose slug is `slug`, with its blocks and variants resolved."""
        default = await self.default_locale()
        params = {
            "content_type": "page",
            "fields.slug": slug,
            "include": 3,
            "limit": 1,
            "locale": "*",
        }
        body = await self._entries(params, preview=preview, entry=f"page {slug}")
        if not body["items"]:
            raise ContentNotFound(self.name, f"no page with slug {slug!r}", entry=slug)
        item = body["items"][0]
        entry = f"page {_entry_id(item)}"
        links = _index_includes(body.get("includes"))
        fields = _resolve(item, links, 0, default)
        if not isinstance(fields, dict):
            raise MalformedContent(self.name, "entry has no fields", entry=entry, field="fields")
        return to_parsed(self.name, entry, fields, slug)

    async def list_pages(self) -> list[str]:
        """Every page slug, page by page (1000 entries per request)."""
        slugs: list[str] = []
        skip = 0
        while True:
            params = {
                "content_type": "page",
                "select": "fields.slug",
                "limit": PAGE_SIZE,
                "skip": skip,
                "order": "fields.slug",
            }
            body = await self._entries(params, preview=False, entry="pages")
            for item in body["items"]:
                slug = (item.get("fields") or {}).get("slug")
                if isinstance(slug, str):
                    slugs.append(slug)
            skip += len(body["items"])
            if not body["items"] or skip >= int(body.get("total", 0)):
                return sorted(slugs)

    async def fetch_catalog(self) -> Catalog:
        """Every published `product` entry (1000 per request), images resolved."""
        default = await self.default_locale()
        documents: list[Any] = []
        skip = 0
        while True:
            params = {
                "content_type": "product",
                "include": 1,
                "limit": PAGE_SIZE,
                "skip": skip,
                "order": "fields.sku",
                "locale": "*",
            }
            try:
                body = await self._entries(params, preview=False, entry="products")
            except MalformedContent as exc:
                if exc.field == "request":  # HTTP 400: the space has no `product` type
                    raise CatalogNotConfigured(self.name, exc.message) from None
                raise
            links = _index_includes(body.get("includes"))
            documents += [_resolve(item, links, 0, default) for item in body["items"]]
            skip += len(body["items"])
            if not body["items"] or skip >= int(body.get("total", 0)):
                return parse_catalog(documents, source=self.name, path="product entries")

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Verify Contentful's request signature, then map the entity to pages or blocks."""
        verify_contentful(request, self._webhook_secret, now=request.received_at or time.time())
        topic = request.header("x-contentful-topic") or ""
        payload = request.json(self.name)
        sys = as_object(payload.get("sys"))
        if not topic.startswith("ContentManagement.Entry.") or not sys:
            return ChangedKeys(everything=True)
        content_type = ((sys.get("contentType") or {}).get("sys") or {}).get("id")
        fields = as_object(payload.get("fields"))
        if content_type == "page":
            slugs = _localized_values(fields.get("slug"))
            return ChangedKeys(pages=frozenset(slugs)) if slugs else ChangedKeys(everything=True)
        if content_type == "block":
            ids = _localized_values(fields.get("blockId"))
            return ChangedKeys(blocks=frozenset(ids)) if ids else ChangedKeys(everything=True)
        return ChangedKeys(everything=True)


def _entry_id(item: Any) -> str:
    sys = item.get("sys") if isinstance(item, dict) else None
    return str(sys.get("id", "?")) if isinstance(sys, dict) else "?"


def _localized_values(value: Any) -> list[str]:
    """Webhook payloads carry Management API fields: `{locale: value}`."""
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, str) and v]
    return [value] if isinstance(value, str) and value else []


def _index_includes(includes: Any) -> dict[tuple[str, str], Any]:
    index: dict[tuple[str, str], Any] = {}
    if isinstance(includes, dict):
        for kind in ("Entry", "Asset"):
            for item in includes.get(kind) or []:
                index[(kind, _entry_id(item))] = item
    return index


def _asset(item: Mapping[str, Any], default: str) -> dict[str, Any]:
    """An asset as the canonical image: url, alt (description or title), size."""
    fields = _delocalize(item.get("fields") or {}, default)
    file = fields.get("file") or {}
    url = file.get("url", "")
    image: dict[str, Any] = {
        "url": f"https:{url}" if isinstance(url, str) and url.startswith("//") else url,
        "alt": fields.get("description") or fields.get("title") or "",
    }
    size = (file.get("details") or {}).get("image") or {}
    image.update({key: size[key] for key in ("width", "height") if key in size})
    return image


_UNRESOLVED = object()


def _delocalize(fields: Mapping[str, Any], default: str) -> dict[str, Any]:
    """`{field: {locale: value}}` to `{field: value}` in the default locale.

    Other locales of `title` become `titles`, of `fields` become `localized`
    (an explicit `localized` value wins for the locales it names).
    """
    out: dict[str, Any] = {}
    others: dict[str, dict[str, Any]] = {}
    for name, by_locale in fields.items():
        if not isinstance(by_locale, dict) or not by_locale:
            out[name] = by_locale
            continue
        out[name] = by_locale.get(default, next(iter(by_locale.values())))
        if name in ("title", "fields"):
            others[name] = {loc: v for loc, v in by_locale.items() if loc != default}
    if others.get("title"):
        out["titles"] = {**others["title"], **as_object(out.get("titles"))}
    if others.get("fields"):
        out["localized"] = {**others["fields"], **as_object(out.get("localized"))}
    return out


def _resolve(value: Any, links: Mapping[tuple[str, str], Any], depth: int, default: str) -> Any:
    """Replace `sys` links by the linked entries' fields (assets by their file)."""
    if isinstance(value, list):
        items = [_resolve(item, links, depth, default) for item in value]
        return [item for item in items if item is not _UNRESOLVED]
    if not isinstance(value, dict):
        return value
    sys = value.get("sys")
    if isinstance(sys, dict) and sys.get("type") == "Link":
        target = links.get((str(sys.get("linkType")), str(sys.get("id"))))
        if target is None or depth >= _MAX_DEPTH:
            return _UNRESOLVED
        if sys.get("linkType") == "Asset":
            return _asset(target, default)
        return _resolve(target, links, depth + 1, default)
    if isinstance(sys, dict) and sys.get("type") == "Entry":
        fields = value.get("fields")
        if not isinstance(fields, dict):
            return None
        return _resolve(_delocalize(fields, default), links, depth, default)
    resolved = {key: _resolve(item, links, depth, default) for key, item in value.items()}
    return {key: None if item is _UNRESOLVED else item for key, item in resolved.items()}
