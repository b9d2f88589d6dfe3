"""Recorded-style vendor APIs for the adapter tests, served through httpx.MockTransport.

Each fake answers exactly the requests its adapter sends, with bodies shaped
like the vendor's documented responses (Contentful CDA/CPA entries with
`includes`, Strapi v5 flattened `data` + `meta.pagination`, Sanity query API
`{query, result, ms}`, Directus `{data}` with many-to-any junction items), and
its documented error bodies. `site` and `drafts` hold the content in the
editor vocabulary; tests edit them to simulate a publish. `failures` is a
queue of canned failures answered before the normal response.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cms_adapters.base import CMSAdapter, WebhookRequest
from cms_adapters.contentful import ContentfulAdapter
from cms_adapters.directus import DirectusAdapter
from cms_adapters.filesystem import FilesystemAdapter
from cms_adapters.mapping import page_document
from cms_adapters.sanity import PAGE_QUERY, PRODUCTS_QUERY, SLUGS_QUERY, SanityAdapter
from cms_adapters.strapi import StrapiAdapter
from cms_adapters.webhooks import contentful_signature, sanity_signature

SECRET = "s" * 64  # Contentful requires exactly 64 characters

SITE: dict[str, dict[str, Any]] = {
    "home": {
        "slug": "home",
        "title": "Home",
        "titles": {"de-DE": "Startseite"},
        "locales": ["en-US", "de-DE"],
        "blocks": [
            {
                "blockId": "hero",
                "type": "hero",
                "variants": [
                    {
                        "variantId": "vip",
                        "fields": {"heading": "Members' early access"},
                        "audiences": ["high_value"],
                        "priority": 10,
                        "tags": ["loyalty"],
                    },
                    {
                        "variantId": "default",
                        "fields": {"heading": "Welcome"},
                        "isDefault": True,
                        "localized": {"de-DE": {"heading": "Willkommen"}},
                    },
                ],
            },
            {
                "blockId": "banner",
                "type": "banner",
                "variants": [
                    {
                        "variantId": "sale",
                        "fields": {"text": "Black Friday"},
                        "condition": {"country": {"$in": ["DE", "AT"]}},
                        "scheduleStart": "2026-11-27T00:00:00",
                        "scheduleEnd": "2026-11-30T00:00:00",
                        "scheduleTimezone": "Europe/Berlin",
                    },
                    {
                        "variantId": "default",
                        "fields": {"text": "Free shipping"},
                        "isDefault": True,
                    },
                ],
            },
        ],
    },
    "about": {
        "slug": "about",
        "title": "About us",
        "blocks": [
            {
                "blockId": "story",
                "type": "rich_text",
                "variants": [{"variantId": "default", "fields": {"html": "<p>Hi</p>"}}],
            }
        ],
    },
    "outdoor": {
        "slug": "outdoor",
        "title": "Outdoor",
        "blocks": [
            {
                "blockId": "grid",
                "type": "banner",
                "variants": [{"variantId": "default", "fields": {"text": "Tents"}}],
            }
        ],
    },
}


#: The product catalogue, in the canonical vocabulary; the tent has an image in each CMS.
PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "TENT-2P",
        "name": "Ridgeline 2P Tent",
        "price": 329.0,
        "currency": "USD",
        "category": "outdoor",
        "tags": ["tent", "camping"],
        "url": "/p/tent-2p",
        "brand": "Ridgeline",
        "description": "Two people, three seasons.",
    },
    {
        "sku": "ROPE-9",
        "name": "Dynamic Rope 9 mm",
        "price": 189.0,
        "category": "climbing",
        "tags": ["rope"],
        "url": "/p/rope-9",
    },
    {"sku": "BAD", "name": "Negative price", "price": -1},
]


def drafts_of(site: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Drafts: the home page with a new title."""
    drafts = copy.deepcopy(site)
    drafts["home"]["title"] = "Home (draft)"
    return drafts


@dataclass
class Failure:
    """A canned failure: an HTTP answer, or a timeout when `status` is 0."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def as_response(self) -> httpx.Response:
        content = self.raw if self.raw is not None else json.dumps(self.body).encode()
        return httpx.Response(self.status, content=content, headers=self.headers)


class FakeVendor:
    """Base of the fakes: site content, failure queue, request log."""

    name = ""

    def __init__(self) -> None:
        self.site = copy.deepcopy(SITE)
        self.drafts = drafts_of(self.site)
        self.products = copy.deepcopy(PRODUCTS)
        #: False: the CMS has no product type (each vendor answers that its own way).
        self.catalog = True
        self.failures: list[Failure] = []
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.latency = 0.0

    async def sleep(self, seconds: float) -> None:
        """Recorded instead of slept, so retry tests are instant."""
        self.sleeps.append(seconds)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failures:
            failure = self.failures.pop(0)
            if failure.status == 0:
                raise httpx.ReadTimeout("timed out", request=request)
            return failure.as_response()
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def sync(self) -> None:
        """Make edits of `site`/`drafts` visible (the HTTP fakes read them live)."""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def adapter(self) -> CMSAdapter:
        raise NotImplementedError

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        """A publish webhook for page `slug`, authenticated with `secret`."""
        raise NotImplementedError

    def webhook_without_credentials(self, slug: str) -> WebhookRequest:
        request = self.webhook(slug)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k not in ("authorization", "x-contentful-signature", "sanity-webhook-signature")
        }
        return WebhookRequest(request.method, request.path, headers, request.body)

    # Errors in each vendor's documented shape.
    def unauthorized(self) -> Failure:
        raise NotImplementedError

    def rate_limited(self, seconds: int) -> Failure:
        return Failure(429, {"message": "Rate limit exceeded"}, {"Retry-After": str(seconds)})

    def server_error(self) -> Failure:
        return Failure(500, {"message": "Internal Server Error"})

    def broken_field(self, slug: str) -> None:
        """Make the page's title a number: MalformedContent at `title`."""
        self.site[slug]["title"] = 42


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def bearer_webhook(path: str, body: dict[str, Any], secret: str) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        path,
        {"authorization": f"Bearer {secret}", "content-type": "application/json"},
        json.dumps(body).encode(),
        received_at=time.time(),
    )


# --- Contentful --------------------------------------------------------------


def _link(kind: str, ident: str) -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": kind, "id": ident}}


def _localize(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as `locale=*` returns them: `{field: {locale: value}}`.

    A variant's `localized` overrides become the `de-DE` value of `fields`, and a
    page's `titles` the other locales of `title`, as Contentful editors enter them.
    """
    out = {name: {"en-US": value} for name, value in fields.items()}
    localized = fields.get("localized")
    if isinstance(localized, dict):
        del out["localized"]
        for locale, overrides in localized.items():
            out["fields"][locale] = {**fields["fields"], **overrides}
    titles = fields.get("titles")
    if isinstance(titles, dict):
        del out["titles"]
        out["title"].update(titles)
    return out


def _entry(content_type: str, ident: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"tags": []},
        "sys": {
            "space": _link("Space", "sp1"),
            "id": ident,
            "type": "Entry",
            "createdAt": "2026-11-01T10:00:00.000Z",
            "updatedAt": "2026-11-20T10:00:00.000Z",
            "environment": _link("Environment", "master"),
            "revision": 3,
            "contentType": _link("ContentType", content_type),
        },
        "fields": _localize(fields),
    }


class FakeContentful(FakeVendor):
    """Content Delivery / Preview API: `GET /spaces/{space}/environments/{env}/entries`."""

    name = "contentful"

    def _page_entries(self, page: dict[str, Any]) -> tuple[dict[str, Any], list[Any], list[Any]]:
        entries: list[Any] = []
        assets: list[Any] = []
        block_links = []
        for block in page["blocks"]:
            variant_links = []
            for variant in block["variants"]:
                ident = f"variant-{block['blockId']}-{variant['variantId']}"
                fields = dict(variant)
                if block["blockId"] == "hero" and variant["variantId"] == "default":
                    fields["image"] = _link("Asset", "asset-hero")
                    file = {
                        "url": "//images.ctfassets.net/sp1/asset-hero/abc/hero.jpg",
                        "contentType": "image/jpeg",
                        "details": {"size": 1, "image": {"width": 1600, "height": 900}},
                    }
                    assets.append(
                        {
                            "sys": {"id": "asset-hero", "type": "Asset"},
                            "fields": _localize({"title": "Trail at dawn", "file": file}),
                        }
                    )
                entries.append(_entry("variant", ident, fields))
                variant_links.append(_link("Entry", ident))
            ident = f"block-{block['blockId']}"
            fields = {"blockId": block["blockId"], "type": block["type"], "variants": variant_links}
            entries.append(_entry("block", ident, fields))
            block_links.append(_link("Entry", ident))
        # A link to an unpublished entry: the Delivery API leaves it out of `includes`.
        block_links.append(_link("Entry", "unpublished-block"))
        fields = {k: v for k, v in page.items() if k != "blocks"} | {"blocks": block_links}
        return _entry("page", f"page-{page['slug']}", fields), entries, assets

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/spaces/sp1/environments/master/locales":
            locales = [
                {"code": "en-US", "name": "English (United States)", "default": True},
                {"code": "de-DE", "name": "German (Germany)", "default": False},
            ]
            items = [
                {**locale, "fallbackCode": None, "sys": {"id": locale["code"], "type": "Locale"}}
                for locale in locales
            ]
            return _json(
                {"sys": {"type": "Array"}, "total": 2, "skip": 0, "limit": 1000, "items": items}
            )
        if request.url.path != "/spaces/sp1/environments/master/entries":
            return _json(
                {
                    "sys": {"type": "Error", "id": "NotFound"},
                    "message": "The resource could not be found.",
                },
                404,
            )
        preview = request.url.host == "preview.contentful.com"
        expected = "Bearer preview-token" if preview else "Bearer cda-token"
        if request.headers.get("authorization") != expected:
            return self.unauthorized().as_response()
        site = self.drafts if preview else self.site
        params = request.url.params
        if params["content_type"] == "product":
            return self._products(params)
        assert params["content_type"] == "page"
        if "fields.slug" in params:
            assert params["locale"] == "*"
            page = site.get(params["fields.slug"])
            items, entries, assets = [], [], []
            if page is not None:
                item, entries, assets = self._page_entries(page)
                items = [item]
            body: dict[str, Any] = {
                "sys": {"type": "Array"},
                "total": len(items),
                "skip": 0,
                "limit": 1,
                "items": items,
            }
            if items:
                body["includes"] = {"Entry": entries, "Asset": assets}
            return _json(body)
        skip, limit = int(params["skip"]), int(params["limit"])
        slugs = sorted(site)
        items = [
            {"sys": {"id": f"page-{slug}", "type": "Entry"}, "fields": {"slug": slug}}
            for slug in slugs[skip : skip + limit]
        ]
        return _json(
            {
                "sys": {"type": "Array"},
                "total": len(slugs),
                "skip": skip,
                "limit": limit,
                "items": items,
            }
        )

    def _products(self, params: Any) -> httpx.Response:
        if not self.catalog:
            return _json(
                {
                    "sys": {"type": "Error", "id": "InvalidQuery"},
                    "message": "The query you sent was invalid. Probably a filter or ordering "
                    "specification is not applicable to the type of a field.",
                    "details": {"errors": [{"name": "unknownContentType"}]},
                },
                400,
            )
        assert params["locale"] == "*"
        skip, limit = int(params["skip"]), int(params["limit"])
        ordered = sorted(self.products, key=lambda p: p["sku"])
        items, assets = [], []
        for product in ordered[skip : skip + limit]:
            fields = dict(product)
            if product["sku"] == "TENT-2P":
                fields["image"] = _link("Asset", "asset-tent")
                file = {"url": "//images.ctfassets.net/sp1/asset-tent/abc/tent.jpg"}
                assets.append(
                    {
                        "sys": {"id": "asset-tent", "type": "Asset"},
                        "fields": _localize({"title": "Ridgeline 2P Tent", "file": file}),
                    }
                )
            items.append(_entry("product", f"product-{product['sku']}", fields))
        body = {
            "sys": {"type": "Array"},
            "total": len(ordered),
            "skip": skip,
            "limit": limit,
            "items": items,
            "includes": {"Asset": assets},
        }
        return _json(body)

    def adapter(self) -> CMSAdapter:
        return ContentfulAdapter(
            "sp1",
            "cda-token",
            preview_token="preview-token",
            webhook_secret=SECRET,
            transport=self.transport(),
            sleep=self.sleep,
        )

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        body = json.dumps(
            {
                "sys": {
                    "type": "Entry",
                    "id": f"page-{slug}",
                    "contentType": _link("ContentType", "page"),
                    "revision": 4,
                },
                "fields": {"slug": {"en-US": slug}, "title": {"en-US": "x"}},
            }
        ).encode()
        timestamp = str(int(time.time() * 1000))
        headers = {
            "content-type": "application/vnd.contentful.management.v1+json",
            "x-contentful-topic": "ContentManagement.Entry.publish",
            "x-contentful-timestamp": timestamp,
            "x-contentful-signed-headers": "x-contentful-timestamp,x-contentful-topic",
        }
        signed = [
            ("x-contentful-timestamp", timestamp),
            ("x-contentful-topic", "ContentManagement.Entry.publish"),
        ]
        headers["x-contentful-signature"] = contentful_signature(
            secret, "POST", "/webhooks/contentful", signed, body
        )
        return WebhookRequest(
            "POST", "/webhooks/contentful", headers, body, received_at=time.time()
        )

    def unauthorized(self) -> Failure:
        return Failure(
            401,
            {
                "sys": {"type": "Error", "id": "AccessTokenInvalid"},
                "message": "The access token you sent could not be found or is invalid.",
                "requestId": "abc",
            },
        )

    def rate_limited(self, seconds: int) -> Failure:
        return Failure(
            429,
            {
                "sys": {"type": "Error", "id": "RateLimitExceeded"},
                "message": (
                    "You have exceeded the rate limit of the Organization this Space belongs "
                    "to by making too many API requests within a short timespan. "
                    "Please wait a moment before trying the request again."
                ),
                "requestId": "r",
            },
            {
                "X-Contentful-RateLimit-Reset": str(seconds),
                "X-Contentful-RateLimit-Second-Limit": "55",
            },
        )


# --- Strapi v5 -----------------------------------------------------------------


class FakeStrapi(FakeVendor):
    """Strapi v5 REST: `GET /api/pages` with filters, populate, status, pagination."""

    name = "strapi"

    @staticmethod
    def _translated(page: dict[str, Any], locale: str) -> dict[str, Any] | None:
        """The page's other-locale document, as Strapi i18n stores it (or None)."""
        titles = page.get("titles")
        if not isinstance(titles, dict) or locale not in titles:
            has_fields = any(
                locale in variant.get("localized", {})
                for block in page["blocks"]
                for variant in block["variants"]
            )
            if not has_fields:
                return None
        translated = copy.deepcopy(page)
        translated["title"] = (titles if isinstance(titles, dict) else {}).get(
            locale, page["title"]
        )
        translated.pop("titles", None)
        for block in translated["blocks"]:
            for variant in block["variants"]:
                overrides = variant.pop("localized", {}).get(locale, {})
                variant["fields"] = {**variant["fields"], **overrides}
        return translated

    def _strip_localized(self, page: dict[str, Any]) -> dict[str, Any]:
        """Default-locale documents carry no `localized`/`titles`: those are other locales."""
        if not isinstance(page.get("titles", {}), dict):
            return page
        page = copy.deepcopy(page)
        page.pop("titles", None)
        for block in page["blocks"]:
            for variant in block["variants"]:
                variant.pop("localized", None)
        return page

    def _document(self, index: int, page: dict[str, Any], status: str) -> dict[str, Any]:
        blocks = []
        for b_index, block in enumerate(page["blocks"]):
            variants = []
            for v_index, variant in enumerate(block["variants"]):
                item = {"id": 100 * b_index + v_index, **variant}
                if block["blockId"] == "hero" and variant["variantId"] == "default":
                    item["image"] = {
                        "id": 7,
                        "documentId": "img7",
                        "name": "hero.jpg",
                        "alternativeText": "Trail at dawn",
                        "width": 1600,
                        "height": 900,
                        "url": "/uploads/hero_abc.jpg",
                    }
                else:
                    item["image"] = None
                variants.append(item)
            blocks.append(
                {
                    "__component": "tessera.block",
                    "id": b_index + 1,
                    "blockId": block["blockId"],
                    "type": block["type"],
                    "variants": variants,
                }
            )
        return {
            "id": index + 1,
            "documentId": f"doc{page['slug']}",
            **{k: v for k, v in page.items() if k != "blocks"},
            "createdAt": "2026-11-01T10:00:00.000Z",
            "updatedAt": "2026-11-20T10:00:00.000Z",
            "publishedAt": None if status == "draft" else "2026-11-20T10:00:00.000Z",
            "locale": "en",
            "blocks": blocks,
        }

    def _products(self, request: httpx.Request) -> httpx.Response:
        if not self.catalog:
            return _json(
                {
                    "data": None,
                    "error": {
                        "status": 404,
                        "name": "NotFoundError",
                        "message": "Not Found",
                        "details": {},
                    },
                },
                404,
            )
        params = request.url.params
        assert params["populate"] == "image"
        page, size = int(params["pagination[page]"]), int(params["pagination[pageSize]"])
        ordered = sorted(self.products, key=lambda p: p["sku"])
        data = []
        for index, product in enumerate(ordered[(page - 1) * size : page * size]):
            image = None
            if product["sku"] == "TENT-2P":
                image = {
                    "id": 9,
                    "documentId": "img9",
                    "name": "tent.jpg",
                    "alternativeText": "Ridgeline 2P Tent",
                    "width": 800,
                    "height": 600,
                    "url": "/uploads/tent_abc.jpg",
                }
            data.append(
                {
                    "id": index + 1,
                    "documentId": f"prod{product['sku']}",
                    **product,
                    "image": image,
                    "publishedAt": "2026-11-20T10:00:00.000Z",
                }
            )
        count = -(-len(ordered) // size)
        meta = {
            "pagination": {
                "page": page,
                "pageSize": size,
                "pageCount": count,
                "total": len(ordered),
            }
        }
        return _json({"data": data, "meta": meta})

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/products":
            if request.headers.get("authorization") != "Bearer strapi-token":
                return self.unauthorized().as_response()
            return self._products(request)
        if request.url.path != "/api/pages":
            return _json(
                {
                    "data": None,
                    "error": {
                        "status": 404,
                        "name": "NotFoundError",
                        "message": "Not Found",
                        "details": {},
                    },
                },
                404,
            )
        if request.headers.get("authorization") != "Bearer strapi-token":
            return self.unauthorized().as_response()
        params = request.url.params
        status = params.get("status", "published")
        site = self.drafts if status == "draft" else self.site
        if "filters[slug][$eq]" in params:
            assert (
                params["populate[blocks][on][tessera.block][populate][variants][populate]"]
                == "image"
            )
            slug = params["filters[slug][$eq]"]
            page = site.get(slug)
            if page is not None and "locale" in params:
                page = self._translated(page, params["locale"])
            elif page is not None:
                page = self._strip_localized(page)
            data = [self._document(0, page, status)] if page is not None else []
            meta = {
                "pagination": {"page": 1, "pageSize": 1, "pageCount": len(data), "total": len(data)}
            }
            return _json({"data": data, "meta": meta})
        page, size = int(params["pagination[page]"]), int(params["pagination[pageSize]"])
        slugs = sorted(site)
        data = [
            {"id": i + 1, "documentId": f"doc{slug}", "slug": slug}
            for i, slug in enumerate(slugs[(page - 1) * size : page * size])
        ]
        count = -(-len(slugs) // size)
        meta = {
            "pagination": {"page": page, "pageSize": size, "pageCount": count, "total": len(slugs)}
        }
        return _json({"data": data, "meta": meta})

    def adapter(self) -> CMSAdapter:
        return StrapiAdapter(
            "http://strapi.test",
            "strapi-token",
            webhook_secret=SECRET,
            transport=self.transport(),
            sleep=self.sleep,
        )

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        body = {
            "event": "entry.publish",
            "createdAt": "2026-11-22T10:00:00.000Z",
            "model": "page",
            "uid": "api::page.page",
            "entry": {"id": 1, "documentId": f"doc{slug}", "slug": slug, "title": "x"},
        }
        return bearer_webhook("/webhooks/strapi", body, secret)

    def unauthorized(self) -> Failure:
        return Failure(
            401,
            {
                "data": None,
                "error": {
                    "status": 401,
                    "name": "UnauthorizedError",
                    "message": "Missing or invalid credentials",
                    "details": {},
                },
            },
        )


# --- Sanity ----------------------------------------------------------------------


class FakeSanity(FakeVendor):
    """Sanity HTTP query API: `GET /v2025-02-19/data/query/{dataset}?query=...&$param=...`."""

    name = "sanity"

    def _result(self, page: dict[str, Any], draft: bool) -> dict[str, Any]:
        blocks: list[Any] = []
        for block in page["blocks"]:
            variants = []
            for index, variant in enumerate(block["variants"]):
                item: dict[str, Any] = {"_key": f"k{index}", "_type": "variant", **variant}
                # Sanity has no JSON field type: these are text fields holding JSON.
                for name in ("fields", "condition", "localized"):
                    if name in item and not isinstance(item[name], str):
                        item[name] = json.dumps(item[name])
                item["image"] = None
                if block["blockId"] == "hero" and variant["variantId"] == "default":
                    item["image"] = {
                        "url": "https://cdn.sanity.io/images/proj1/production/abc-1600x900.jpg",
                        "alt": "Trail at dawn",
                        "width": 1600,
                        "height": 900,
                    }
                variants.append(item)
            blocks.append(
                {
                    "_id": f"block-{block['blockId']}",
                    "blockId": block["blockId"],
                    "type": block["type"],
                    "variants": variants,
                }
            )
        blocks.append(None)  # a reference to a deleted block projects to null
        prefix = "drafts." if draft else ""
        if isinstance(page.get("titles"), dict):
            page = {**page, "titles": json.dumps(page["titles"])}
        return {
            "_id": f"{prefix}page-{page['slug']}",
            **{k: v for k, v in page.items() if k != "blocks"},
            "blocks": blocks,
        }

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v2025-02-19/data/query/production":
            return _json(
                {"error": {"description": "Not found", "type": "httpError"}, "statusCode": 404}, 404
            )
        if request.headers.get("authorization") != "Bearer sanity-token":
            return self.unauthorized().as_response()
        params = request.url.params
        perspective = params["perspective"]
        site = self.drafts if perspective == "drafts" else self.site
        query = params["query"]
        if query == PAGE_QUERY:
            slug = json.loads(params["$slug"])
            page = site.get(slug)
            result = None if page is None else self._result(page, perspective == "drafts")
        elif query == PRODUCTS_QUERY:
            assert perspective == "published"
            start, end = json.loads(params["$start"]), json.loads(params["$end"])
            result = []
            for product in sorted(self.products, key=lambda p: p["sku"])[start:end]:
                image = None
                if product["sku"] == "TENT-2P":
                    image = {
                        "url": "https://cdn.sanity.io/images/proj1/production/tent-800x600.jpg",
                        "alt": "Ridgeline 2P Tent",
                        "width": 800,
                        "height": 600,
                    }
                result.append(
                    {
                        "currency": None,
                        "tags": None,
                        "url": None,
                        "brand": None,
                        "description": None,
                        "category": None,
                        **product,
                        "image": image,
                    }
                )
            if not self.catalog:
                result = []  # GROQ: no document of that type, an empty list
        elif query == SLUGS_QUERY:
            start, end = json.loads(params["$start"]), json.loads(params["$end"])
            result = sorted(site)[start:end]
        else:
            return _json(
                {"error": {"description": "unknown query", "type": "queryParseError"}}, 400
            )
        return _json({"query": query, "result": result, "syncTags": ["s1:abc"], "ms": 4})

    def adapter(self) -> CMSAdapter:
        return SanityAdapter(
            "proj1",
            "production",
            token="sanity-token",
            webhook_secret=SECRET,
            transport=self.transport(),
            sleep=self.sleep,
        )

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        body = json.dumps({"_id": f"page-{slug}", "_type": "page", "slug": slug}).encode()
        header = sanity_signature(secret, int(time.time() * 1000), body)
        return WebhookRequest(
            "POST",
            "/webhooks/sanity",
            {"content-type": "application/json", "sanity-webhook-signature": header},
            body,
            received_at=time.time(),
        )

    def unauthorized(self) -> Failure:
        return Failure(
            401, {"statusCode": 401, "error": "Unauthorized", "message": "Session not found"}
        )


# --- Directus --------------------------------------------------------------------


class FakeDirectus(FakeVendor):
    """Directus REST: `GET /items/pages` with filter, fields (many-to-any), limit/offset.

    Ids are stable: page `n` (1-based, in slug order) has id `n`, its blocks
    `100 n + i` and their variants `10000 n + 100 i + j`. The webhook lookups
    (`/items/pages` by id, `/items/pages_blocks`, `/items/block_variants`,
    `/revisions`) answer from the published site; `history` holds older slugs.
    """

    name = "directus"

    def __init__(self) -> None:
        super().__init__()
        #: page id -> slugs it had before (newest last), for `/revisions`.
        self.history: dict[int, list[str]] = {}

    def page_id(self, slug: str) -> int:
        return sorted(self.site).index(slug) + 1

    def _item(self, index: int, page: dict[str, Any], status: str) -> dict[str, Any]:
        number = self.page_id(page["slug"]) if page["slug"] in self.site else index + 1
        junctions = []
        for b_index, block in enumerate(page["blocks"]):
            variants = []
            block_id = 100 * number + b_index
            for v_index, variant in enumerate(block["variants"]):
                item = {
                    "id": 100 * block_id + v_index,
                    "block": block_id,
                    **variant,
                    "image": None,
                }
                if block["blockId"] == "hero" and variant["variantId"] == "default":
                    item["image"] = {
                        "id": "4b9f1c2e-0000-4000-8000-000000000001",
                        "title": "Hero",
                        "description": "Trail at dawn",
                        "width": 1600,
                        "height": 900,
                    }
                variants.append(item)
            junctions.append(
                {
                    "id": block_id,
                    "sort": None,
                    "collection": "blocks",
                    "item": {
                        "id": block_id,
                        "blockId": block["blockId"],
                        "type": block["type"],
                        "variants": variants,
                    },
                }
            )
        titles = page.get("titles", {})
        skip = ("blocks", "titles") if isinstance(titles, dict) else ("blocks",)
        fields = {k: v for k, v in page.items() if k not in skip}
        translations = (
            [{"languages_code": code, "title": title} for code, title in titles.items()]
            if isinstance(titles, dict)
            else []
        )
        return {
            "id": number,
            "status": status,
            **fields,
            "translations": translations,
            "blocks": junctions,
        }

    def _products(self, request: httpx.Request) -> httpx.Response:
        if not self.catalog:
            return _json(
                {
                    "errors": [
                        {
                            "message": "You don't have permission to access this.",
                            "extensions": {"code": "FORBIDDEN"},
                        }
                    ]
                },
                403,
            )
        params = request.url.params
        assert params["filter[status][_eq]"] == "published"
        assert "image.id" in params["fields"].split(",")
        offset, limit = int(params["offset"]), int(params["limit"])
        data = []
        for product in sorted(self.products, key=lambda p: p["sku"])[offset : offset + limit]:
            image = None
            if product["sku"] == "TENT-2P":
                image = {
                    "id": "4b9f1c2e-0000-4000-8000-00000000000a",
                    "title": "Tent",
                    "description": "Ridgeline 2P Tent",
                    "width": 800,
                    "height": 600,
                }
            data.append({**product, "image": image})
        return _json({"data": data})

    def _lookup(self, path: str, params: httpx.QueryParams) -> httpx.Response:
        """The webhook lookups: pages by id, junction rows, variants, revisions."""
        pages = {self.page_id(slug): slug for slug in self.site}
        if path == "/revisions":
            number = int(params["filter[item][_eq]"])
            slugs = [*self.history.get(number, []), pages.get(number)]
            rows = [{"data": {"slug": slug}} for slug in reversed(slugs) if slug]
            return _json({"data": rows[: int(params["limit"])]})
        ids = {
            int(k)
            for k in params[
                "filter[id][_in]" if path != "/items/pages_blocks" else "filter[item][_in]"
            ].split(",")
        }
        if path == "/items/pages":
            return _json({"data": [{"slug": pages[i]} for i in sorted(ids) if i in pages]})
        if path == "/items/block_variants":
            return _json({"data": [{"block": i // 100} for i in sorted(ids)]})
        rows = [{"pages_id": {"slug": pages[i // 100]}} for i in sorted(ids) if i // 100 in pages]
        return _json({"data": rows})

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/items/products":
            if request.headers.get("authorization") != "Bearer directus-token":
                return self.unauthorized().as_response()
            return self._products(request)
        known = ("/items/pages", "/items/pages_blocks", "/items/block_variants", "/revisions")
        if request.url.path not in known:
            return _json(
                {
                    "errors": [
                        {
                            "message": "Route doesn't exist.",
                            "extensions": {"code": "ROUTE_NOT_FOUND"},
                        }
                    ]
                },
                404,
            )
        if request.headers.get("authorization") != "Bearer directus-token":
            return self.unauthorized().as_response()
        params = request.url.params
        if request.url.path != "/items/pages" or "filter[id][_in]" in params:
            return self._lookup(request.url.path, params)
        published = params.get("filter[status][_eq]") == "published"
        site = self.site if published else self.drafts
        if "filter[slug][_eq]" in params:
            assert "blocks.item:blocks.variants.*" in params["fields"].split(",")
            slug = params["filter[slug][_eq]"]
            data = (
                [self._item(0, site[slug], "published" if published else "draft")]
                if slug in site
                else []
            )
            return _json({"data": data})
        offset, limit = int(params["offset"]), int(params["limit"])
        return _json({"data": [{"slug": slug} for slug in sorted(site)[offset : offset + limit]]})

    def adapter(self) -> CMSAdapter:
        return DirectusAdapter(
            "http://directus.test",
            "directus-token",
            webhook_secret=SECRET,
            transport=self.transport(),
            sleep=self.sleep,
        )

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        body = {
            "event": "pages.items.update",
            "collection": "pages",
            "keys": [str(self.page_id(slug)) if slug in self.site else "1"],
            "payload": {"slug": slug, "title": "x"},
        }
        return bearer_webhook("/webhooks/directus", body, secret)

    def unauthorized(self) -> Failure:
        return Failure(
            401,
            {
                "errors": [
                    {
                        "message": "Invalid user credentials.",
                        "extensions": {"code": "INVALID_CREDENTIALS"},
                    }
                ]
            },
        )


# --- Filesystem ------------------------------------------------------------------


class FakeFilesystem(FakeVendor):
    """The filesystem adapter over a folder written from `site` (JSON files)."""

    name = "filesystem"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.sync()

    def sync(self) -> None:
        for folder, site in (("pages", self.site), ("drafts/pages", self.drafts)):
            target = self.root / folder
            target.mkdir(parents=True, exist_ok=True)
            for stale in target.glob("*.json"):
                stale.unlink()
            for slug, page in site.items():
                document = page_document("filesystem", slug, page)
                (target / f"{slug}.json").write_text(json.dumps(document), encoding="utf-8")
        catalog = self.root / "catalog"
        if self.catalog:
            catalog.mkdir(exist_ok=True)
            products = [
                {**p, "image": {"url": "/img/tent.jpg", "alt": "Ridgeline 2P Tent"}}
                if p["sku"] == "TENT-2P"
                else p
                for p in self.products
            ]
            (catalog / "products.json").write_text(json.dumps({"products": products}), "utf-8")
        elif catalog.exists():
            shutil.rmtree(catalog)

    def adapter(self) -> CMSAdapter:
        return FilesystemAdapter(self.root, webhook_secret=SECRET)

    def webhook(self, slug: str, *, secret: str = SECRET) -> WebhookRequest:
        return bearer_webhook("/webhooks/filesystem", {"pages": [slug]}, secret)


HTTP_VENDORS: dict[str, Callable[[], FakeVendor]] = {
    "contentful": FakeContentful,
    "strapi": FakeStrapi,
    "sanity": FakeSanity,
    "directus": FakeDirectus,
}
