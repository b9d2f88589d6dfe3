"""The product catalogue read from live Directus and Strapi, with the tokens the guides create."""

from __future__ import annotations

from typing import Any

import pytest

from cms_adapters.directus import DirectusAdapter
from cms_adapters.strapi import StrapiAdapter
from tests.cms_live.directus_setup import DirectusSite, ok
from tests.cms_live.strapi_setup import StrapiSite

pytestmark = pytest.mark.slow

PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "LIVE-TENT",
        "name": "Live Tent",
        "price": 329.5,
        "currency": "USD",
        "category": "outdoor",
        "tags": ["tent", "camping"],
        "url": "/p/live-tent",
        "brand": "Ridgeline",
        "description": "Two doors.",
    },
    {"sku": "LIVE-ROPE", "name": "Live Rope", "price": 189.0, "category": "climbing"},
]


def _check(catalog: Any) -> None:
    assert sorted(catalog.skus) == ["LIVE-ROPE", "LIVE-TENT"]  # the draft is not served
    tent = catalog.get("LIVE-TENT")
    assert (tent.name, tent.price, tent.category, tent.tags, tent.url, tent.brand) == (
        "Live Tent",
        329.5,
        "outdoor",
        ("tent", "camping"),
        "/p/live-tent",
        "Ridgeline",
    )
    assert catalog.get("LIVE-ROPE").currency == "USD"
    assert catalog.problems == ()


async def test_directus_products(directus_site: DirectusSite) -> None:
    admin = directus_site.admin
    created = [
        ok(admin.post("/items/products", json={"status": "published", **product}))["id"]
        for product in PRODUCTS
    ]
    draft = {"status": "draft", "sku": "LIVE-DRAFT", "name": "Draft", "price": 1}
    created.append(ok(admin.post("/items/products", json=draft))["id"])
    try:
        async with DirectusAdapter(directus_site.url, directus_site.token) as adapter:
            _check(await adapter.fetch_catalog())
    finally:
        for key in created:
            admin.delete(f"/items/products/{key}")


async def test_strapi_products(strapi_site: StrapiSite) -> None:
    editor = strapi_site.editor
    created = []
    for product in PRODUCTS:
        response = editor.post(
            "/api/products", params={"status": "published"}, json={"data": product}
        )
        assert response.status_code < 300, response.text
        created.append(response.json()["data"]["documentId"])
    draft = {"sku": "LIVE-DRAFT", "name": "Draft", "price": 1}
    response = editor.post("/api/products", params={"status": "draft"}, json={"data": draft})
    assert response.status_code < 300, response.text
    created.append(response.json()["data"]["documentId"])
    try:
        async with StrapiAdapter(strapi_site.url, strapi_site.token) as adapter:
            _check(await adapter.fetch_catalog())
    finally:
        for document in created:
            editor.delete(f"/api/products/{document}")
