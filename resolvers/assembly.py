"""Assemble a page for a visitor: content, profile, context, decisions.

This is the only place a request touches the content cache and the profile
reader; everything it decides is delegated to the pure `blocks` package, so
the decision is computed before any GraphQL field is resolved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.model import Page
from blocks.selection import PageDecision, select_page
from blocks.templating import RenderedFields, render_page
from cms_adapters.errors import CMSError, ContentNotFound
from resolvers.context import Services
from resolvers.errors import BadUserInput, ContentUnavailable, PageNotFound
from resolvers.page_plan import PageArgs


@dataclass(frozen=True, slots=True)
class AssembledPage:
    """A page with the locale served and every block's decision."""

    page: Page
    version: str
    locale: str
    decision: PageDecision
    context: TargetingContext
    #: The chosen variants' fields, localized, with templates rendered.
    rendered: tuple[RenderedFields, ...]
    preview: bool = False

    @property
    def templated_values(self) -> tuple[str, ...]:
        """The rendered templated fields: what a response depends on beyond decisions."""
        return tuple(
            json.dumps(item.fields, sort_keys=True, default=str)
            for item in self.rendered
            if item.templated
        )


@dataclass(frozen=True, slots=True)
class PlannedPage:
    """A page decided before GraphQL execution, for the arguments in `args`."""

    args: PageArgs
    assembled: AssembledPage


async def targeting_context(
    services: Services, facts: RequestFacts, locale: str | None
) -> TargetingContext:
    """Read the profile within its budget and build the targeting context."""
    read = await services.profiles.read(facts.visitor_id)
    return build_context(
        request=facts,
        profile=read.profile,
        audiences=services.audiences.current,
        now=services.clock(),
        locale=locale,
        profile_available=read.available,
    )


async def assemble_page(
    services: Services, slug: str, locale: str | None, facts: RequestFacts
) -> AssembledPage:
    """The page `slug` in `locale`, decided for the visitor `facts` describes."""
    try:
        parsed = await services.content.get_page(slug)
    except ContentNotFound:
        raise PageNotFound(f"No page with slug {slug!r}.") from None
    except CMSError as exc:
        raise ContentUnavailable(f"Content for page {slug!r} is unavailable: {exc}") from None
    page = parsed.page
    served = page.resolve_locale(locale)
    if served is None:
        raise BadUserInput(
            f"locale: page {slug!r} is not available in {locale!r}; "
            f"available locales: {', '.join(page.locales)}."
        )
    context = await targeting_context(services, facts, served)
    decision, rendered = render_page(page, select_page(page, context), context, served)
    return AssembledPage(
        page=page,
        version=parsed.version,
        locale=served,
        decision=decision,
        context=context,
        rendered=rendered,
    )
