"""The product catalogue: canonical products, read through the CMS adapters."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

from blocks.catalog import Catalog, Product, parse_catalog
from blocks.parse import ParsedPage
from cms_adapters.base import CMSAdapter
from cms_adapters.catalog_cache import CatalogCache
from cms_adapters.errors import CatalogNotConfigured, CMSUnavailable, MalformedContent
from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR


def test_valid_products_are_kept_and_each_invalid_one_is_named() -> None:
    catalog = parse_catalog(
        [
            {"sku": "A", "name": "Tent", "price": 100, "category": "outdoor", "tags": ["tent"]},
            {"sku": "B", "name": "Pack", "price": -1},
            "not an object",
            {"sku": "A", "name": "Again", "price": 1},
            {"name": "No sku", "price": 1},
            {"sku": "C", "name": "Boot", "price": 50, "url": "/p/c", "image": {"url": "/c.jpg"}},
        ],
        source="test",
    )
    assert catalog.skus == ("A", "C")
    problems = [str(problem) for problem in catalog.problems]
    assert problems[0].startswith("products[1].price:")
    assert problems[1] == "products[2]: a product must be an object"
    assert problems[2] == "products[3].sku: duplicate sku 'A'"
    assert problems[3].startswith("products[4].sku:")
    assert catalog.get("C") == Product(
        sku="C", name="Boot", price=50.0, url="/p/c", image={"url": "/c.jpg", "alt": ""}
    )
    assert catalog.by_url("/p/c") is catalog.get("C")
    assert catalog.by_url("/p/c/?ref=home") is catalog.get("C")
    assert catalog.by_url("/elsewhere") is None
    assert catalog.get("C").tile() == {  # type: ignore[union-attr]
        "sku": "C",
        "name": "Boot",
        "price": 50.0,
        "currency": "USD",
        "url": "/p/c",
        "image": {"url": "/c.jpg", "alt": ""},
    }


async def test_the_demo_ships_a_catalogue_of_at_least_200_products() -> None:
    catalog = await FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog()
    assert len(catalog) >= 200
    assert catalog.problems == ()
    assert catalog.source == "filesystem"
    categories = {product.category for product in catalog.products}
    assert len(categories) >= 6
    assert all(product.url and product.category for product in catalog.products)
    # The products the demo's product grids show are catalogue products too.
    home = await FilesystemAdapter(DEMO_CONTENT_DIR).fetch_page("home")
    grid = next(block for block in home.page.blocks if block.id == "home-products")
    for variant in grid.variants:
        for tile in variant.fields["products"]:
            assert tile["sku"] in catalog


async def test_filesystem_catalogue_files_are_merged_and_checked(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "a.yaml").write_text(
        yaml.safe_dump({"products": [{"sku": "A", "name": "A", "price": 1}]}), encoding="utf-8"
    )
    products = [{"sku": "B", "name": "B", "price": 2}, {"sku": "A", "name": "x", "price": 3}]
    (tmp_path / "catalog" / "b.json").write_text(json.dumps({"products": products}), "utf-8")
    catalog = await FilesystemAdapter(tmp_path).fetch_catalog()
    assert catalog.skus == ("A", "B")
    assert catalog.get("A").name == "A"  # type: ignore[union-attr]
    (tmp_path / "catalog" / "c.yaml").write_text("products: {not: a list}", encoding="utf-8")
    with pytest.raises(MalformedContent, match="must hold a list of products"):
        await FilesystemAdapter(tmp_path).fetch_catalog()


async def test_a_cms_without_a_catalogue_says_so(tmp_path: Path) -> None:
    with pytest.raises(CatalogNotConfigured):
        await FilesystemAdapter(tmp_path).fetch_catalog()

    class Pages(CMSAdapter):
        name = "pages-only"

        async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
            raise NotImplementedError

        async def list_pages(self) -> list[str]:
            return []

    with pytest.raises(CatalogNotConfigured, match="pages-only"):
        await Pages().fetch_catalog()


class Flaky(CMSAdapter):
    """A CMS whose catalogue fails on demand."""

    name = "flaky"

    def __init__(self) -> None:
        self.fail = False
        self.calls = 0

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        raise NotImplementedError

    async def list_pages(self) -> list[str]:
        return []

    async def fetch_catalog(self) -> Catalog:
        self.calls += 1
        if self.fail:
            raise CMSUnavailable(self.name, "down")
        return parse_catalog([{"sku": f"S{self.calls}", "name": "n", "price": 1}], source=self.name)


async def test_the_catalogue_cache_keeps_its_copy_while_the_cms_fails() -> None:
    cms = Flaky()
    async with CatalogCache(cms, refresh=3600) as cache:
        assert cache.current is not None
        assert cache.current.skus == ("S1",)
        cms.fail = True
        assert await cache.refresh() is cache.current
        assert cache.current.skus == ("S1",)
        cms.fail = False
        await cache.refresh()
        assert cache.current.skus == ("S3",)


async def test_the_catalogue_cache_stops_asking_a_cms_without_one(tmp_path: Path) -> None:
    async with CatalogCache(FilesystemAdapter(tmp_path), refresh=0.01) as cache:
        assert cache.current is None
        assert cache.configured is False


class Slow(Flaky):
    """A CMS that takes ten seconds to list its products."""

    async def fetch_catalog(self) -> Catalog:
        await asyncio.sleep(10)
        return await super().fetch_catalog()


async def test_a_slow_cms_delays_no_start_up() -> None:
    started = time.monotonic()
    async with CatalogCache(Slow(), refresh=3600, startup_wait=0.2) as cache:
        assert time.monotonic() - started < 2.0
        assert cache.current is None  # pages show no products until it arrives
