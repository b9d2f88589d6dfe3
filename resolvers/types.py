"""Strawberry types of the public schema: pages, blocks, decisions, visitors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from blocks.selection import Decision as DecisionRecord


@strawberry.type(description="Why a block shows the variant it shows.")
class Decision:
    variant_id: str
    reason: str = strawberry.field(
        description="e.g. `experiment`, `experiment:winner`, `audience:high_value`, "
        "`condition`, `priority`, `default`, `score`, `explore`, `preview:forced`, "
        "`fallback:profile-unavailable`, `fallback:no-consent`, `fallback:score-timeout`, "
        "`fallback:score-error`."
    )
    rule_id: str | None = strawberry.field(description="The rule that selected the variant.")
    score: float | None = strawberry.field(
        description="The model's score of the chosen variant, when a model ranked its tier."
    )
    experiment: str | None = strawberry.field(
        description="The key of the experiment that decided the block, if one did."
    )
    bucket: str | None = strawberry.field(
        description="The experiment arm: its variation key (the variant id; for a "
        "multivariate experiment the variant ids of its blocks joined by `+`)."
    )
    variation: int | None = strawberry.field(
        description="The experiment variation's index (0 is the control). A client that "
        "renders the block from an edge cache sends it back in a `block_view` event."
    )
    propensity: float = strawberry.field(
        description="The probability the policy had of choosing this variant "
        "(1 when there was no choice; below 1 under exploration)."
    )
    model_version: str | None = strawberry.field(
        description="The model version that ranked the variant's tier, if any."
    )

    @classmethod
    def from_record(cls, record: DecisionRecord) -> Decision:
        """Expose a decision record from `blocks.selection`."""
        return cls(
            variant_id=record.variant_id,
            reason=record.reason,
            rule_id=record.rule_id,
            score=record.score,
            experiment=record.experiment,
            bucket=record.bucket,
            variation=record.variation,
            propensity=record.propensity,
            model_version=record.model_version,
        )


@strawberry.interface(description="A modular piece of a page, in the variant chosen for you.")
class Block:
    id: strawberry.ID = strawberry.field(
        description="Unique per block, locale and variant (`<blockId>:<locale>:<variantId>`), "
        "so a client's normalized cache never mixes languages or variants."
    )
    block_id: str = strawberry.field(description="The block's id in the CMS.")
    type: str = strawberry.field(description="The CMS block type, e.g. `hero`.")
    variant_id: str
    decision: Decision
    #: The variant's fields as served (localized, templates rendered), for `renderedHtml`.
    served_fields: strawberry.Private[Mapping[str, Any]]

    @strawberry.field(
        description="The block as accessible HTML from its type's server-side template "
        "(for email, SSR fallbacks and other channels without JavaScript)."
    )
    def rendered_html(self, info: strawberry.Info) -> str:
        """Render the block with the configured per-type template."""
        renderer = info.context.services.renderer
        html: str = renderer.render(self.type, self.block_id, self.variant_id, self.served_fields)
        return html


@strawberry.type
class Image:
    url: str
    alt: str
    width: int | None = None
    height: int | None = None


@strawberry.type
class Link:
    label: str
    url: str


@strawberry.type
class Product:
    sku: str
    name: str
    price: float
    currency: str
    url: str | None = None
    image: Image | None = None
    badge: str | None = None


@strawberry.type(description="A page-top hero.")
class HeroBlock(Block):
    heading: str
    subheading: str | None
    image: Image | None
    cta: Link | None


@strawberry.type(description="A slim announcement strip.")
class BannerBlock(Block):
    text: str
    tone: str
    link: Link | None


@strawberry.type(description="Editorial copy as HTML.")
class RichTextBlock(Block):
    html: str


@strawberry.type(description="A titled grid of products.")
class ProductGridBlock(Block):
    title: str
    products: list[Product]


@strawberry.enum(description="How a recommendations block picks its products.")
class RecommendationStrategy(Enum):
    PERSONALIZED = "personalized"
    SIMILAR = "similar"
    TRENDING = "trending"
    RECENTLY_VIEWED = "recently-viewed"
    FREQUENTLY_BOUGHT_TOGETHER = "frequently-bought-together"


@strawberry.type(
    description="Products picked for this page view by a strategy: personalized (the visitor's "
    "history), similar (to a product), trending, recently viewed, frequently bought together. "
    "Send a `click` event with `blockId`, `variantId` and `properties.productId` when one is "
    "clicked."
)
class RecommendationsBlock(Block):
    title: str
    strategy: RecommendationStrategy
    products: list[Product]
    source: str = strawberry.field(
        description="What produced the products: `hybrid`, `popularity` (no history yet), "
        "`similar`, `together`, `trending`, `profile` (recently viewed), or "
        "`fallback:<why>` (`timeout`, `error`, `no-model`, `no-product`, `empty`: trending "
        "products stood in)."
    )
    model_version: str | None = strawberry.field(
        description="The recommendation model version asked, when a model was."
    )


@strawberry.type(description="A prompt with one button.")
class CallToActionBlock(Block):
    heading: str
    body: str | None
    button: Link


@strawberry.type(description="A customer quote.")
class TestimonialBlock(Block):
    quote: str
    author: str
    role: str | None
    rating: int | None


@strawberry.type(description="A block of a type the schema does not model; raw fields.")
class GenericBlock(Block):
    fields: JSON


def _image(value: Mapping[str, Any] | None) -> Image | None:
    return Image(**value) if value else None


def _link(value: Mapping[str, Any] | None) -> Link | None:
    return Link(**value) if value else None


def _product(value: Mapping[str, Any]) -> Product:
    return Product(**{**value, "image": _image(value.get("image"))})


_Common = dict[str, Any]
_BUILDERS: dict[str, Callable[[_Common, Mapping[str, Any]], Block]] = {
    "hero": lambda c, f: HeroBlock(
        **c,
        heading=f["heading"],
        subheading=f.get("subheading"),
        image=_image(f.get("image")),
        cta=_link(f.get("cta")),
    ),
    "banner": lambda c, f: BannerBlock(
        **c, text=f["text"], tone=f.get("tone", "info"), link=_link(f.get("link"))
    ),
    "rich_text": lambda c, f: RichTextBlock(**c, html=f["html"]),
    "product_grid": lambda c, f: ProductGridBlock(
        **c, title=f["title"], products=[_product(p) for p in f["products"]]
    ),
    "call_to_action": lambda c, f: CallToActionBlock(
        **c, heading=f["heading"], body=f.get("body"), button=Link(**f["button"])
    ),
    "recommendations": lambda c, f: RecommendationsBlock(
        **c,
        title=f["title"],
        strategy=RecommendationStrategy(f["strategy"]),
        products=[_product(p) for p in f.get("products") or ()],
        source=str(f.get("source") or ""),
        model_version=f.get("modelVersion"),
    ),
    "testimonial": lambda c, f: TestimonialBlock(
        **c, quote=f["quote"], author=f["author"], role=f.get("role"), rating=f.get("rating")
    ),
}


def build_block(
    block_id: str,
    block_type: str,
    locale: str,
    fields: Mapping[str, Any],
    record: DecisionRecord,
) -> Block:
    """The GraphQL object for a block shown in the variant `record` chose."""
    common: _Common = {
        "id": strawberry.ID(f"{block_id}:{locale}:{record.variant_id}"),
        "block_id": block_id,
        "type": block_type,
        "variant_id": record.variant_id,
        "decision": Decision.from_record(record),
        "served_fields": fields,
    }
    builder = _BUILDERS.get(block_type)
    if builder is None:
        return GenericBlock(**common, fields=cast(JSON, dict(fields)))
    return builder(common, fields)


BLOCK_TYPES: list[type[Block]] = [
    HeroBlock,
    BannerBlock,
    RichTextBlock,
    ProductGridBlock,
    CallToActionBlock,
    TestimonialBlock,
    RecommendationsBlock,
    GenericBlock,
]


@strawberry.enum(description="Who may share a cached copy of the response.")
class CacheScope(Enum):
    PUBLIC = "public"
    AUDIENCE = "audience"
    PRIVATE = "private"


@strawberry.type(description="A page assembled for this visitor.")
class Page:
    slug: str
    title: str
    locale: str
    personalized: bool = strawberry.field(
        description="False when the profile could not be read in time: default variants."
    )
    blocks: list[Block]
    preview: bool = strawberry.field(
        default=False,
        description="True for an editor's preview (simulated visitor, drafts): never cache it.",
    )
    cache_scope: CacheScope = strawberry.field(
        default=CacheScope.PRIVATE,
        description="What the decisions read: `PUBLIC` (nothing about the visitor), "
        "`AUDIENCE` (audiences, device, country: shared under an edge key) or `PRIVATE`. "
        "The response's Cache-Control is the strictest scope of everything it shows.",
    )


@strawberry.type(description="A learned segment: visitors who behave alike (k-means).")
class Segment:
    id: int = strawberry.field(description="The segment's number in its segmentation.")
    label: str = strawberry.field(
        description="Its most distinctive features, e.g. `frequent · outdoor · mobile`; "
        'target it with `{"segment.label": ...}`.'
    )


@strawberry.type(description="What Tessera knows about the current visitor.")
class Visitor:
    id: strawberry.ID
    known: bool = strawberry.field(description="Whether a profile exists for this visitor.")
    audiences: list[str]
    traits: JSON
    cart: JSON
    personalized: bool = strawberry.field(description="False when the profile was unavailable.")
    segment: Segment | None = strawberry.field(
        default=None,
        description="The visitor's learned segment, once a segmentation is active and has "
        "assigned them (at their next event, or by `segments train --activate`).",
    )
