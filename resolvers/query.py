"""Root query: pages and the visitor."""

from __future__ import annotations

import re
from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery.errors import BadUserInput
from delivery.pages import AssembledPage
from delivery.preview import assemble_preview
from resolvers.context import GraphQLContext
from resolvers.inputs import RequestContextInput
from resolvers.preview import PreviewInput
from resolvers.types import CacheScope, Page, Segment, Visitor, build_block

_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

TesseraInfo = Info[GraphQLContext, None]


def jsonable(value: object) -> object:
    """Profile values as JSON: datetimes become ISO 8601 strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def visitor_view(attributes: dict[str, object], visitor_id: str, available: bool) -> Visitor:
    """The `Visitor` object for a targeting context's attributes."""
    audiences = attributes.get("audiences")
    segment = attributes.get("segment")
    learned = None
    if isinstance(segment, dict) and isinstance(segment.get("id"), int):
        learned = Segment(id=segment["id"], label=str(segment.get("label") or ""))
    return Visitor(
        id=strawberry.ID(visitor_id),
        known=bool(attributes.get("known", False)),
        audiences=list(audiences) if isinstance(audiences, list) else [],
        traits=cast(JSON, jsonable(attributes.get("traits", {}))),
        cart=cast(JSON, jsonable(attributes.get("cart", {}))),
        personalized=available,
        segment=learned,
    )


def page_view(assembled: AssembledPage) -> Page:
    """The `Page` object for a decided page."""
    blocks = [
        build_block(block.id, block.type, assembled.locale, rendered.fields, record)
        for block, record, rendered in zip(
            assembled.page.blocks, assembled.decision.decisions, assembled.rendered, strict=True
        )
    ]
    return Page(
        slug=assembled.page.slug,
        title=assembled.page.title_for(assembled.locale),
        locale=assembled.locale,
        personalized=assembled.decision.personalized,
        blocks=blocks,
        preview=assembled.preview,
        cache_scope=CacheScope(assembled.cache_scope),
    )


@strawberry.type
class Query:
    @strawberry.field(description="A page with each block in the variant chosen for you.")
    async def page(
        self,
        info: TesseraInfo,
        slug: str,
        locale: str | None = None,
        context: RequestContextInput | None = None,
        preview: PreviewInput | None = None,
    ) -> Page | None:
        """Resolve `page(slug, locale, context, preview)`."""
        if locale is not None and not _LOCALE.match(locale):
            raise BadUserInput(f"locale: {locale!r} is not a BCP 47 tag such as 'en-US'.")
        ctx = info.context
        request_context = context.domain() if context is not None else None
        if preview is not None:
            assembled = await assemble_preview(
                ctx.delivery,
                ctx.principal,
                slug,
                locale,
                request_context,
                preview.spec(),
                drafts=preview.drafts,
                visitor_id=preview.visitor_id,
            )
        else:
            assembled = await ctx.delivery.page(slug, locale, request_context)
        return page_view(assembled)

    @strawberry.field(description="What Tessera knows about the current visitor.")
    async def visitor(self, info: TesseraInfo) -> Visitor:
        """Resolve `visitor` from the profile and the request (never shared)."""
        ctx = info.context
        targeting = await ctx.delivery.visitor_context()
        return visitor_view(dict(targeting.attributes), ctx.visitor.id, targeting.profile_available)
