"""Assemble a page for a visitor: content, profile, context, decisions, exposures.

This is the only place a request touches the content cache and the profile
reader; everything it decides is delegated to the pure `blocks` package, so
the decision is computed before any GraphQL field is resolved. In between the
two selection phases the active model scores the contested tiers, within its
time budget; the served decisions are queued as exposures (never awaited).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TypeVar

from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.experiments import assign_page
from blocks.model import Page
from blocks.selection import (
    FALLBACK_SCORE_ERROR,
    FALLBACK_SCORE_TIMEOUT,
    PageDecision,
    PagePlan,
    Scores,
    plan_page,
    rank_page,
)
from blocks.templating import RenderedFields, render_page
from cms_adapters.errors import CMSError, ContentNotFound
from profiles.reader import ProfileRead
from resolvers.context import Services
from resolvers.errors import BadUserInput, ContentUnavailable, PageNotFound
from resolvers.page_plan import PageArgs
from scoring.exposures import exposure_document
from scoring.features import Snapshot, visitor_snapshot


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


def _context(
    services: Services, facts: RequestFacts, locale: str | None, read: ProfileRead
) -> TargetingContext:
    return build_context(
        request=facts,
        profile=read.profile,
        audiences=services.audiences.current,
        now=services.clock(),
        locale=locale,
        profile_available=read.available,
    )


_T = TypeVar("_T")


class RequestReads:
    """One request's reads: each visitor's profile read once, each distinct page decided once.

    A query may ask for `visitor` and `page` under many aliases, resolved
    concurrently; without this, each alias read the profile again (2,000 of
    them pushed the profile reader into degraded mode for every visitor) and
    decided and logged the same page again. The first resolver starts the
    work; the others await the same task.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._profiles: dict[str, asyncio.Task[ProfileRead]] = {}
        self._pages: dict[str, asyncio.Task[AssembledPage]] = {}

    def profile(self, visitor_id: str) -> Awaitable[ProfileRead]:
        """The visitor's profile, read within its budget at most once per request."""
        return _once(self._profiles, visitor_id, lambda: self.services.profiles.read(visitor_id))

    def page(self, slug: str, locale: str | None, facts: RequestFacts) -> Awaitable[AssembledPage]:
        """The page `slug` decided for `facts`, at most once per request and arguments."""
        key = json.dumps([slug, locale, asdict(facts)], sort_keys=True)
        return _once(self._pages, key, lambda: _assemble(self, slug, locale, facts))


def _once(
    tasks: dict[str, asyncio.Task[_T]], key: str, start: Callable[[], Awaitable[_T]]
) -> Awaitable[_T]:
    task = tasks.get(key)
    if task is None:

        async def run() -> _T:
            return await start()

        task = tasks[key] = asyncio.ensure_future(run())
    return task


async def targeting_context(
    reads: RequestReads, facts: RequestFacts, locale: str | None
) -> TargetingContext:
    """Read the profile within its budget (once per request) and build the targeting context."""
    return _context(reads.services, facts, locale, await reads.profile(facts.visitor_id))


async def decide(
    services: Services, plan: PagePlan, features: Snapshot
) -> tuple[PageDecision, Scores | None]:
    """Rank the plan: by the active model's scores within budget, else priority order."""
    rng = services.rng
    result = None
    if services.scorer is not None and plan.contested:
        result = await services.scorer.score(plan, features)
    if result is None or result.outcome == "no_model":
        return rank_page(plan, None, epsilon=services.cold_start_epsilon, rng=rng), None
    if result.outcome == "scored":
        decision = rank_page(
            plan,
            result.scores,
            epsilon=services.exploration_epsilon,
            rng=rng,
            model_version=result.version,
        )
        return decision, result.scores
    if result.outcome in ("timeout", "error"):
        fallback = FALLBACK_SCORE_TIMEOUT if result.outcome == "timeout" else FALLBACK_SCORE_ERROR
        decision = rank_page(
            plan, None, epsilon=0.0, rng=rng, model_version=result.version, fallback=fallback
        )
        return decision, None
    return rank_page(plan, None, epsilon=0.0, rng=rng), None  # nothing to score


def analytics_allowed(read: ProfileRead, default: bool = True) -> bool:
    """Whether exposures of this visitor may be logged (their analytics consent)."""
    if not read.available:
        # The profile could not be read, so neither could a withdrawal of consent.
        return False
    consent = (read.profile or {}).get("consent")
    if isinstance(consent, Mapping) and "analytics" in consent:
        return consent["analytics"] is not False
    # No consent recorded yet: the same default event ingestion applies.
    return default


async def assemble_page(
    services: Services, slug: str, locale: str | None, facts: RequestFacts
) -> AssembledPage:
    """The page `slug` in `locale`, decided for the visitor `facts` describes."""
    return await RequestReads(services).page(slug, locale, facts)


async def _assemble(
    reads: RequestReads, slug: str, locale: str | None, facts: RequestFacts
) -> AssembledPage:
    services = reads.services
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
    read = await reads.profile(facts.visitor_id)
    context = _context(services, facts, served, read)
    features = visitor_snapshot(context)
    assignments = assign_page(page, context, services.allocation)
    if services.sticky is not None and assignments.sticky_docs:
        # Experiment assignments to keep (sticky buckets): saved off the request path.
        profile_id = str((read.profile or {}).get("_id") or facts.visitor_id)
        services.sticky.record(profile_id, assignments.sticky_docs)
    decision, scores = await decide(services, plan_page(page, context, assignments), features)
    decision, rendered = render_page(page, decision, context, served)
    if services.exposures is not None and analytics_allowed(
        read, services.default_analytics_consent
    ):
        # Only enqueued here: the writer task does the I/O off the request path.
        services.exposures.record(
            [
                exposure_document(
                    visitor_id=facts.visitor_id,
                    page=page,
                    locale=served,
                    decision=decision,
                    context=context,
                    scores=scores,
                    now=services.clock(),
                    features=features,
                )
            ]
        )
    return AssembledPage(
        page=page,
        version=parsed.version,
        locale=served,
        decision=decision,
        context=context,
        rendered=rendered,
    )
