"""`page(slug, preview: PreviewInput)`: editors see the page as any visitor would.

Requires a preview token (`PREVIEW_TOKENS`) or an admin key. Draft content
comes straight from the CMS adapter (never through the content cache), and a
preview response is never cacheable (`Cache-Control: private, no-store`,
`X-Tessera-Preview: true`, `page.preview: true`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from blocks.context import build_context
from blocks.experiments import assign_page
from blocks.parse import ParsedPage
from blocks.preview import PreviewError, PreviewSpec, check_variations, force_variants, simulate
from blocks.selection import select_page
from blocks.templating import render_page
from cms_adapters.errors import CMSError, ContentNotFound
from gateway.auth import Permission
from resolvers.assembly import AssembledPage
from resolvers.context import GraphQLContext
from resolvers.errors import (
    BadUserInput,
    ContentUnavailable,
    Forbidden,
    PageNotFound,
    Unauthenticated,
)
from resolvers.request_facts import request_facts

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
        )


def require_preview(context: GraphQLContext) -> None:
    """Refuse the preview unless the caller holds a preview token or an admin key."""
    principal = context.principal
    if principal is None:
        raise Unauthenticated(
            "Preview needs a preview token: send Authorization: Bearer <token> "
            "(configured in PREVIEW_TOKENS)."
        )
    if not principal.allows(Permission.PREVIEW):
        raise Forbidden(f"A {principal.kind} key does not allow previews.")


def mark_uncacheable(context: GraphQLContext) -> None:
    """Say on the HTTP response that this is a preview nobody may cache."""
    if context.response is not None:
        context.response.headers["Cache-Control"] = "private, no-store"
        context.response.headers[PREVIEW_HEADER] = "true"


async def _fetch(context: GraphQLContext, slug: str, drafts: bool) -> ParsedPage:
    services = context.services
    try:
        if drafts:
            # Drafts bypass the content cache: they must never be served to visitors.
            return await services.content.adapter.fetch_page(slug, preview=True)
        return await services.content.get_page(slug)
    except ContentNotFound:
        raise PageNotFound(f"No page with slug {slug!r}.") from None
    except CMSError as exc:
        raise ContentUnavailable(f"Content for page {slug!r} is unavailable: {exc}") from None


async def assemble_preview(
    context: GraphQLContext,
    slug: str,
    locale: str | None,
    request_context: Any,
    preview: PreviewInput,
) -> AssembledPage:
    """The page `slug` decided for the simulated visitor `preview` describes."""
    require_preview(context)
    mark_uncacheable(context)
    spec = preview.spec()
    services = context.services
    parsed = await _fetch(context, slug, preview.drafts)
    page = parsed.page
    served = page.resolve_locale(locale)
    if served is None:
        raise BadUserInput(
            f"locale: page {slug!r} is not available in {locale!r}; "
            f"available locales: {', '.join(page.locales)}."
        )
    visitor_id = preview.visitor_id or f"preview-{context.visitor.id}"
    facts = request_facts(context.request, visitor_id, request_context)
    profile = None
    if preview.visitor_id is not None:
        read = await services.profiles.read(preview.visitor_id)
        profile = read.profile
    audiences = services.audiences.current
    base = build_context(
        request=facts,
        profile=profile,
        audiences=audiences,
        now=spec.at or services.clock(),
        locale=served,
    )
    try:
        targeting = simulate(base, spec, audiences)
        check_variations(page, spec.variations)
        # The simulated visitor's sticky buckets are read, never saved: a preview changes nothing.
        assignments = assign_page(page, targeting, services.allocation, forced=spec.variations)
        decision = force_variants(page, select_page(page, targeting, assignments), spec.forced)
    except PreviewError as exc:
        raise BadUserInput(str(exc)) from None
    decision, rendered = render_page(page, decision, targeting, served)
    return AssembledPage(
        page=page,
        version=parsed.version,
        locale=served,
        decision=decision,
        context=targeting,
        rendered=rendered,
        preview=True,
    )
