"""`page(slug, preview: PreviewInput)`: what editors send to preview a page.

The preview itself is `delivery.preview`; a preview response is never
cacheable (`Cache-Control: private, no-store`, `X-Tessera-Preview: true`,
`page.preview: true`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.scalars import JSON

from blocks.preview import PreviewSpec
from delivery.errors import (
    BadUserInput,
)

PREVIEW_HEADER = "X-Tessera-Preview"


@strawberry.input(description="Force one block to show one variant.")
class ForcedVariantInput:
    block_id: str
    variant_id: str


@strawberry.input(description="Show one experiment variation (QA; never logged as an exposure).")
class ForcedVariationInput:
    experiment: str = strawberry.field(description="The experiment key.")
    variation: int = strawberry.field(description="The variation index (0 is the control).")


@strawberry.input(description="Preview the page as a simulated visitor (preview token required).")
class PreviewInput:
    audiences: list[str] | None = strawberry.field(
        default=None,
        description="Treat the visitor as a member of exactly these audiences.",
    )
    attributes: JSON | None = strawberry.field(
        default=None,
        description='Attribute overrides by dot path, e.g. `{"cart.value": 200, "country": "DE"}`.',
    )
    at: datetime | None = strawberry.field(
        default=None, description="The moment to preview (schedules); default now."
    )
    variants: list[ForcedVariantInput] | None = strawberry.field(
        default=None, description="Force these variants regardless of targeting."
    )
    experiments: list[ForcedVariationInput] | None = strawberry.field(
        default=None,
        description="Force these experiment variations, even in a draft experiment.",
    )
    segment: str | None = strawberry.field(
        default=None,
        description="Simulate a visitor in this learned segment of the active segmentation "
        "(its label, e.g. `frequent · outdoor · mobile`, or its id).",
    )
    drafts: bool = strawberry.field(
        default=True, description="Show unpublished content where the CMS has it."
    )
    visitor_id: str | None = strawberry.field(
        default=None,
        description="Start from this visitor's stored profile (default: a new visitor).",
    )

    def spec(self) -> PreviewSpec:
        """The pure preview specification; raises BadUserInput for malformed input."""
        if self.attributes is not None and not isinstance(self.attributes, dict):
            raise BadUserInput("preview.attributes: must be an object of dot paths to values")
        forced: dict[str, str] = {}
        for index, item in enumerate(self.variants or []):
            if item.block_id in forced:
                raise BadUserInput(
                    f"preview.variants[{index}].blockId: block {item.block_id!r} is forced twice"
                )
            forced[item.block_id] = item.variant_id
        variations: dict[str, int] = {}
        for index, choice in enumerate(self.experiments or []):
            if choice.experiment in variations:
                raise BadUserInput(
                    f"preview.experiments[{index}].experiment: experiment "
                    f"{choice.experiment!r} is forced twice"
                )
            variations[choice.experiment] = choice.variation
        at = self.at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return PreviewSpec(
            audiences=tuple(self.audiences) if self.audiences is not None else None,
            attributes=dict(self.attributes or {}),
            at=at,
            forced=forced,
            variations=variations,
            segment=self.segment,
        )
