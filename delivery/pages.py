"""Page delivery: each page decided once per request, and the cache policy it implies.

This is the only place a request touches the content cache and the profile
reader; everything it decides is delegated to the pure `blocks` package. In
between the two selection phases the active model scores the contested
tiers, within its time budget; the served decisions are queued as exposures
(never awaited).

One `Delivery` serves one request. The HTTP edge, the response cache and the
resolvers all ask it, so the page is decided once however many of them (or
however many GraphQL aliases) need it, and the cache headers are derived from
exactly the decisions the response shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.experiments import assign_page
from blocks.model import Page
from blocks.parse import ParsedPage
from blocks.selection import (
    FALLBACK_SCORE_ERROR,
    FALLBACK_SCORE_TIMEOUT,
    PageDecision,
    PagePlan,
    Scores,
    mark_stale,
    plan_page,
    rank_page,
)
from blocks.templating import RenderedFields, render_page
from cms_adapters.errors import CMSError, ContentNotFound
from delivery.errors import BadUserInput, ContentUnavailable, PageNotFound
from delivery.metrics import count_decisions
from delivery.recommendations import fill_recommendations
from delivery.request_facts import RequestContext, header_lookup, request_facts
from delivery.services import Services, VisitorIdentity
from profiles.reader import ProfileRead
from scoring.exposures import exposure_document
from scoring.features import Snapshot, visitor_snapshot

CacheScope = Literal["public", "audience", "private"]
_RANK: dict[CacheScope, int] = {"public": 0, "audience": 1, "private": 2}


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
    def templated_values(self) -> tuple[Hashable, ...]:
        """The rendered templated fields: what a response depends on beyond decisions."""
        return tuple(item.identity() for item in self.rendered if item.templated)

    @property
    def cache_scope(self) -> CacheScope:
        """Who may share this page: everyone, visitors with the same facts, or nobody."""
        if self.preview:
            return "private"
        scope = self.decision.scope
        return "private" if scope == "individual" else scope

    @property
    def surrogate_keys(self) -> tuple[str, ...]:
        """What a publish purges this page by: the page, each block, the locale."""
        blocks = sorted({f"block:{block.id}" for block in self.page.blocks})
        return (f"page:{self.page.slug}", *blocks, f"locale:{self.locale}")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a response may be cached, from everything its request decided."""

    scope: CacheScope
    surrogate_keys: tuple[str, ...] = ()
    #: The key the response is shared under (scope `audience`): the visitor's, as presented.
    edge_key: str | None = None
    #: The key of exactly the facts the pages read, for edges that key per page.
    page_key: str | None = None
    #: The visitor's current edge key, when the request did not present it.
    refresh_edge_key: str | None = None
    #: Why the response is private (for logs and the debug header).
    reason: str | None = None


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


class Delivery:
    """One request's reads and decisions: each profile read once, each page decided once.

    A query may ask for `visitor` and `page` under many aliases, resolved
    concurrently; without this, each alias read the profile again (2,000 of
    them pushed the profile reader into degraded mode for every visitor) and
    decided and logged the same page again. The first caller starts the work;
    the others await the same task. `policy()` then derives the response's
    cache policy from every page decided and everything marked private.
    """

    def __init__(
        self,
        services: Services,
        visitor: VisitorIdentity,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.services = services
        self.visitor = visitor
        self.headers = header_lookup(headers)
        self._facts: RequestFacts | None = None
        self._profiles: dict[Hashable, asyncio.Task[ProfileRead]] = {}
        self._pages: dict[Hashable, asyncio.Task[AssembledPage]] = {}
        self._private: list[str] = []
        self._extra: list[AssembledPage] = []

    def facts(
        self, context: RequestContext | None = None, visitor_id: str | None = None
    ) -> RequestFacts:
        """What the request says about the visitor (`context` overrides the headers)."""
        if context is None and visitor_id is None:
            if self._facts is None:
                self._facts = request_facts(self.headers, self.visitor.id, None)
            return self._facts
        return request_facts(self.headers, visitor_id or self.visitor.id, context)

    def profile(self, visitor_id: str) -> Awaitable[ProfileRead]:
        """The visitor's profile, read within its budget at most once per request."""
        return _once(self._profiles, visitor_id, lambda: self.services.profiles.read(visitor_id))

    def page(
        self, slug: str, locale: str | None, context: RequestContext | None = None
    ) -> Awaitable[AssembledPage]:
        """The page `slug` decided for this visitor, at most once per request and arguments."""
        facts = self.facts(context)
        key = (
            slug,
            locale,
            facts.visitor_id,
            facts.device,
            facts.country,
            facts.path,
            facts.referrer,
            facts.user_agent,
            tuple(sorted(facts.utm.items())),
        )
        return _once(self._pages, key, lambda: _assemble(self, slug, locale, facts))

    async def visitor_context(self) -> TargetingContext:
        """The current visitor's targeting context (what `visitor` shows): private."""
        self.mark_private("visitor")
        facts = self.facts()
        return _context(self.services, facts, None, await self.profile(facts.visitor_id))

    def mark_private(self, reason: str) -> None:
        """Say the response shows something about this visitor alone (or is a write)."""
        self._private.append(reason)

    def add_page(self, page: AssembledPage) -> None:
        """Count a page decided elsewhere (a preview) in the policy."""
        self._extra.append(page)

    def decided(self) -> list[AssembledPage]:
        """Every page decided so far in this request."""
        pages = [
            task.result()
            for task in self._pages.values()
            if task.done() and not task.cancelled() and task.exception() is None
        ]
        return pages + self._extra

    def _stale(self, pages: list[AssembledPage], presented: str | None) -> str | None:
        """The current edge key when the request presented an outdated one.

        A page that is private for this visitor (their product history, say) is
        never shared, but the edge still serves other pages by the presented key:
        an outdated one (it says "no history yet") would keep fetching shared
        copies made for visitors the visitor no longer resembles.
        """
        if presented is None or not pages:
            return None
        current = _current_key(self.services, pages[0])
        return current if current is not None and current != presented else None

    def policy(self, presented_edge_key: str | None) -> CachePolicy:
        """The response's cache policy: the strictest of everything decided."""
        pages = self.decided()
        keys = tuple(sorted({key for page in pages for key in page.surrogate_keys}))
        if pages:
            # What a webhook purges when the CMS cannot say what changed.
            keys = (*keys, f"cms:{self.services.content.adapter.name}")
        if self._private:
            return CachePolicy("private", keys, reason=self._private[0])
        scope = max((page.cache_scope for page in pages), key=_RANK.__getitem__, default="public")
        if scope == "private":
            return CachePolicy(
                "private",
                keys,
                reason="decisions",
                refresh_edge_key=self._stale(pages, presented_edge_key),
            )
        if scope == "public":
            return CachePolicy("public", keys)
        edge_keys = self.services.edge_keys
        if edge_keys is None:
            return CachePolicy("private", keys, reason="no edge key secret")
        visitor = pages[0].context
        arms = self.services.experiments.arms(visitor, self.services.allocation)
        current = edge_keys.visitor_key(visitor, arms)
        if presented_edge_key != current:
            # The edge would store this under the key the request presented, which
            # does not describe this visitor now: answer privately, hand out the key.
            return CachePolicy("private", keys, refresh_edge_key=current, reason="edge key")
        facts = frozenset().union(*(page.decision.facts for page in pages))
        return CachePolicy(
            "audience", keys, edge_key=current, page_key=edge_keys.page_key(visitor, facts, arms)
        )


def _current_key(services: Services, page: AssembledPage) -> str | None:
    """The visitor's edge key now (None without keys or a readable profile)."""
    if services.edge_keys is None or not page.context.profile_available:
        return None
    arms = services.experiments.arms(page.context, services.allocation)
    return services.edge_keys.visitor_key(page.context, arms)


#: No CMS names a page with more: a longer slug is refused before it reaches a CMS
#: (a URL of 60,000 characters, a file name the file system cannot hold).
MAX_SLUG_CHARS = 512


def check_slug(slug: str) -> None:
    """BadUserInput for a slug longer than any page's."""
    if len(slug) > MAX_SLUG_CHARS:
        raise BadUserInput(f"slug: at most {MAX_SLUG_CHARS} characters, got {len(slug)}.")


async def fetch_page(services: Services, slug: str, *, drafts: bool) -> ParsedPage:
    """The page's content (drafts straight from the CMS, never cached); public errors."""
    check_slug(slug)
    try:
        if drafts:
            # Drafts bypass the content cache: they must never be served to visitors.
            return await services.content.adapter.fetch_page(slug, preview=True)
        return await services.content.get_page(slug)
    except ContentNotFound:
        raise PageNotFound(f"No page with slug {slug!r}.") from None
    except CMSError as exc:
        raise ContentUnavailable(f"Content for page {slug!r} is unavailable: {exc}") from None


def served_locale(page: Page, slug: str, locale: str | None) -> str:
    """The locale `page` is served in for the one asked; BadUserInput if it has none close."""
    served = page.resolve_locale(locale)
    if served is None:
        raise BadUserInput(
            f"locale: page {slug!r} is not available in {locale!r}; "
            f"available locales: {', '.join(page.locales)}."
        )
    return served


def _once(
    tasks: dict[Hashable, asyncio.Task[_T]], key: Hashable, start: Callable[[], Awaitable[_T]]
) -> Awaitable[_T]:
    task = tasks.get(key)
    if task is None:

        async def run() -> _T:
            return await start()

        task = tasks[key] = asyncio.ensure_future(run())
    return task


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


async def _assemble(
    delivery: Delivery, slug: str, locale: str | None, facts: RequestFacts
) -> AssembledPage:
    services = delivery.services
    parsed = await fetch_page(services, slug, drafts=False)
    page = parsed.page
    served = served_locale(page, slug, locale)
    read = await delivery.profile(facts.visitor_id)
    context = _context(services, facts, served, read)
    features = visitor_snapshot(context)
    # Before the policy is derived: the visitor's edge key covers this page's arms too.
    services.experiments.page(slug, page.experiments)
    assignments = assign_page(page, context, services.allocation)
    if services.sticky is not None and assignments.sticky_docs:
        # Experiment assignments to keep (sticky buckets): saved off the request path.
        profile_id = str((read.profile or {}).get("_id") or facts.visitor_id)
        services.sticky.record(profile_id, assignments.sticky_docs)
    started = time.perf_counter()
    decision, scores = await decide(services, plan_page(page, context, assignments), features)
    spent = time.perf_counter() - started
    decision, rendered = render_page(page, decision, context, served)
    # Recommendations blocks get their products (and the scope of what they read).
    filled = await fill_recommendations(
        services.recommendations,
        page,
        decision,
        rendered,
        context,
        read.profile,
        path=facts.path,
        now=services.clock(),
        spent=spent,
    )
    decision, rendered = filled.decision, filled.rendered
    if read.source == "stale":
        # MongoDB missed the budget; the near-cache's copy (the feed is down) stood in.
        decision = mark_stale(decision)
    count_decisions(decision.decisions)
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
                    recommendations=filled.shown,
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
