"""The product catalogue: canonical products every CMS adapter maps its entries to.

Recommendation models rank product ids; a page shows products, so the
catalogue is where a recommended id becomes a tile (name, price, image,
link). Each adapter reads its CMS's product entries with `fetch_catalog` and
maps them here with `parse_catalog`, which keeps every valid product and
reports each invalid one by its path, as `blocks.parse` does for pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blocks.block_types import Image

#: Most products one catalogue may hold (the models' item vocabulary is built from it).
MAX_PRODUCTS = 100_000


class ProductDoc(BaseModel):
    """One product as a CMS entry holds it (camelCase field names)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=300)
    category: str | None = Field(default=None, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=50)
    price: float = Field(ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    url: str | None = Field(default=None, max_length=2048)
    image: Image | None = None
    brand: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=2000)


@dataclass(frozen=True, slots=True)
class Product:
    """A product of the catalogue."""

    sku: str
    name: str
    price: float
    currency: str = "USD"
    category: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    image: Mapping[str, Any] | None = None
    brand: str | None = None
    description: str | None = None

    def text(self) -> str:
        """What content-based similarity reads: name, category, tags, brand, description."""
        parts = [self.name, self.category or "", " ".join(self.tags), self.brand or ""]
        # The category counts twice: two products of one category are alike first of all.
        parts.append(self.category or "")
        parts.append(self.description or "")
        return " ".join(part for part in parts if part)

    def tile(self) -> dict[str, Any]:
        """The product as a grid tile (`blocks.block_types.Product` fields)."""
        tile: dict[str, Any] = {
            "sku": self.sku,
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
        }
        if self.url:
            tile["url"] = self.url
        if self.image:
            tile["image"] = dict(self.image)
        return tile


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """A product left out of the catalogue, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every product, by sku, with the problems met while reading them."""

    products: tuple[Product, ...]
    problems: tuple[CatalogProblem, ...] = ()
    #: Where the products came from (`filesystem`, `contentful`, ..., or `events`).
    source: str = ""
    _by_sku: dict[str, Product] = field(default_factory=dict, repr=False, compare=False)
    _by_url: dict[str, Product] = field(default_factory=dict, repr=False, compare=False)
    #: A digest of every product: equal for equal catalogues (what a cached tile depends on).
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(repr(self.products).encode("utf-8", "surrogatepass"))
        object.__setattr__(self, "fingerprint", digest.hexdigest()[:32])
        for product in self.products:
            self._by_sku.setdefault(product.sku, product)
            if product.url:
                self._by_url.setdefault(product.url, product)

    def __len__(self) -> int:
        return len(self.products)

    def __contains__(self, sku: object) -> bool:
        return sku in self._by_sku

    def get(self, sku: str) -> Product | None:
        """The product `sku`, if the catalogue has it."""
        return self._by_sku.get(sku)

    def by_url(self, url: str | None) -> Product | None:
        """The product whose page is `url` (the path a product page passes as its context)."""
        if not url:
            return None
        return self._by_url.get(url) or self._by_url.get(url.split("?", 1)[0].rstrip("/"))

    @property
    def skus(self) -> tuple[str, ...]:
        """Every sku, in catalogue order."""
        return tuple(self._by_sku)


def _product(doc: ProductDoc) -> Product:
    return Product(
        sku=doc.sku,
        name=doc.name,
        price=doc.price,
        currency=doc.currency.upper(),
        category=doc.category or None,
        tags=tuple(dict.fromkeys(tag for tag in doc.tags if tag)),
        url=doc.url or None,
        image=doc.image.model_dump(exclude_none=True) if doc.image else None,
        brand=doc.brand or None,
        description=doc.description or None,
    )


def parse_catalog(documents: Iterable[Any], *, source: str, path: str = "products") -> Catalog:
    """The catalogue of the valid product documents; each invalid one is a problem."""
    products: list[Product] = []
    problems: list[CatalogProblem] = []
    seen: set[str] = set()
    for index, raw in enumerate(documents):
        where = f"{path}[{index}]"
        if len(products) >= MAX_PRODUCTS:
            problems.append(
                CatalogProblem(where, f"more than {MAX_PRODUCTS} products; rest left out")
            )
            break
        if not isinstance(raw, Mapping):
            problems.append(CatalogProblem(where, "a product must be an object"))
            continue
        try:
            # A null field is an absent one (GROQ projects undefined fields as null).
            doc = ProductDoc.model_validate({k: v for k, v in raw.items() if v is not None})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in first.get("loc", ()))
            problems.append(CatalogProblem(f"{where}.{loc}" if loc else where, first["msg"]))
            continue
        if doc.sku in seen:
            problems.append(CatalogProblem(f"{where}.sku", f"duplicate sku {doc.sku!r}"))
            continue
        seen.add(doc.sku)
        products.append(_product(doc))
    return Catalog(products=tuple(products), problems=tuple(problems), source=source)


def merge_catalogs(catalogs: Sequence[Catalog], *, source: str) -> Catalog:
    """One catalogue of several (the first product of a sku wins)."""
    products: list[Product] = []
    seen: set[str] = set()
    for catalog in catalogs:
        for product in catalog.products:
            if product.sku not in seen:
                seen.add(product.sku)
                products.append(product)
    problems = tuple(problem for catalog in catalogs for problem in catalog.problems)
    return Catalog(products=tuple(products), problems=problems, source=source)
