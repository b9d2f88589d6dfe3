"""Field schemas of the block types Tessera models, keyed by block type name.

A variant's `fields` are validated against its block type's schema when
content is loaded; a type without a schema passes through as generic JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Image(_Fields):
    """An image reference with the alternative text accessibility requires."""

    url: str = Field(min_length=1)
    alt: str = ""
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)


class Link(_Fields):
    """A labelled link."""

    label: str = Field(min_length=1)
    url: str = Field(min_length=1)


class HeroFields(_Fields):
    """A page-top hero: heading, optional subheading, image and call to action."""

    heading: str = Field(min_length=1)
    subheading: str | None = None
    image: Image | None = None
    cta: Link | None = None


class BannerFields(_Fields):
    """A slim announcement strip."""

    text: str = Field(min_length=1)
    tone: str = "info"
    link: Link | None = None


class RichTextFields(_Fields):
    """Editorial copy as HTML."""

    html: str


class Product(_Fields):
    """A product tile in a grid."""

    sku: str = Field(min_length=1)
    name: str = Field(min_length=1)
    price: float = Field(ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    url: str | None = None
    image: Image | None = None
    badge: str | None = None


class ProductGridFields(_Fields):
    """A titled grid of products."""

    title: str = Field(min_length=1)
    products: list[Product] = Field(min_length=1)


class CallToActionFields(_Fields):
    """A prompt with one button."""

    heading: str = Field(min_length=1)
    body: str | None = None
    button: Link


class TestimonialFields(_Fields):
    """A customer quote."""

    quote: str = Field(min_length=1)
    author: str = Field(min_length=1)
    role: str | None = None
    rating: int | None = Field(default=None, ge=1, le=5)


#: How a recommendations block picks its products (docs/recommendations.md).
Strategy = Literal[
    "personalized", "similar", "trending", "recently-viewed", "frequently-bought-together"
]
STRATEGIES: tuple[str, ...] = (
    "personalized",
    "similar",
    "trending",
    "recently-viewed",
    "frequently-bought-together",
)


class RecommendationsFields(_Fields):
    """Products the gateway picks when the page is served, by one strategy."""

    title: str = Field(min_length=1)
    strategy: Strategy
    limit: int = Field(default=8, ge=1, le=24)
    #: The product `similar` and `frequently-bought-together` start from; default: the
    #: product whose `url` is the page's `context.path` (a product page).
    productId: str | None = Field(default=None, min_length=1, max_length=128)
    #: Leave out what the visitor bought or has in the cart. Default: yes for the strategies
    #: that read the visitor anyway; `true` on `trending` or `similar` makes them private.
    excludeOwned: bool | None = None


BLOCK_TYPES: dict[str, type[BaseModel]] = {
    "hero": HeroFields,
    "banner": BannerFields,
    "rich_text": RichTextFields,
    "product_grid": ProductGridFields,
    "call_to_action": CallToActionFields,
    "testimonial": TestimonialFields,
    "recommendations": RecommendationsFields,
}


def validate_fields(block_type: str, fields: Any) -> dict[str, Any]:
    """Validate `fields` for `block_type`; raises pydantic's ValidationError."""
    schema = BLOCK_TYPES.get(block_type)
    if schema is None:
        if not isinstance(fields, dict):
            raise TypeError("fields must be an object")
        return fields
    return schema.model_validate(fields).model_dump(exclude_none=True)
