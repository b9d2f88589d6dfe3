"""Root query: pages and the visitor."""

from __future__ import annotations

import re
from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from blocks.context import RequestFacts
from resolvers.assembly import PlannedPage, targeting_context
from resolvers.context import GraphQLContext
from resolvers.errors import BadUserInput
from resolvers.inputs import RequestContextInput
from resolvers.page_plan import PageArgs
from resolvers.preview import PreviewInput, assemble_preview
from resolvers.request_facts import request_facts
from resolvers.types import Page, Visitor, build_block

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
    return Visitor(
        id=strawberry.ID(visitor_id),
        known=bool(attributes.get("known", False)),
        audiences=list(audiences) if isinstance(audiences, list) else [],
        traits=cast(JSON, jsonable(attributes.get("traits", {}))),
        cart=cast(JSON, jsonable(attributes.get("cart", {}))),
        personalized=available,
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
        planned: PlannedPage | None = getattr(ctx.request.state, "page_plan", None)
        if preview is not None:
            assembled = await assemble_preview(ctx, slug, locale, context, preview)
        elif planned is not None and planned.args == PageArgs(slug, locale, context):
            # The HTTP layer already decided this page; the response it caches is
            # then exactly a function of that decision.
            assembled = planned.assembled
            ctx.request.state.page_plan_used = True
        else:
            facts = request_facts(ctx.request, ctx.visitor.id, context)
            assembled = await ctx.reads.page(slug, locale, facts)
        blocks = [
            build_block(block.id, block.type, rendered.fields, record)
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
        )

    @strawberry.field(description="What Tessera knows about the current visitor.")
    async def visitor(self, info: TesseraInfo) -> Visitor:
        """Resolve `visitor` from the profile and the request."""
        ctx = info.context
        facts: RequestFacts = request_facts(ctx.request, ctx.visitor.id, None)
        targeting = await targeting_context(ctx.reads, facts, None)
        return visitor_view(dict(targeting.attributes), ctx.visitor.id, targeting.profile_available)
