"""Editors' previews: a page as a simulated visitor would see it, never cached.

Requires a preview token (`PREVIEW_TOKENS`) or an admin key. Draft content
comes straight from the CMS adapter (never through the content cache), and a
preview marks its response private.
"""

from __future__ import annotations

from dataclasses import replace

from blocks.context import build_context
from blocks.experiments import assign_page
from blocks.preview import PreviewError, PreviewSpec, check_variations, force_variants, simulate
from blocks.selection import select_page
from blocks.templating import render_page
from delivery.auth import Permission, Principal
from delivery.errors import (
    BadUserInput,
    Forbidden,
    Unauthenticated,
)
from delivery.pages import AssembledPage, Delivery, fetch_page, served_locale
from delivery.recommendations import fill_recommendations
from delivery.request_facts import RequestContext
from delivery.services import Services

PREVIEW_REASON = "preview"


def require_preview(principal: Principal | None) -> None:
    """Refuse the preview unless the caller holds a preview token or an admin key."""
    if principal is None:
        raise Unauthenticated(
            "Preview needs a preview token: send Authorization: Bearer <token> "
            "(configured in PREVIEW_TOKENS)."
        )
    if not principal.allows(Permission.PREVIEW):
        raise Forbidden(f"A {principal.kind} key does not allow previews.")


def _with_segment(services: Services, spec: PreviewSpec, name: str) -> PreviewSpec:
    """The spec with the named learned segment among its simulated attributes."""
    segments = services.segments
    found = None if segments is None else segments.find(name)
    if found is None:
        labels = ", ".join(repr(label) for label in (segments.labels if segments else ()))
        known = labels or "none (no segmentation is active: `python -m gateway segments train`)"
        raise BadUserInput(f"preview.segment: no segment {name!r}; segments: {known}")
    segment = {"id": found["id"], "label": found["label"]}
    return replace(spec, attributes={**spec.attributes, "segment": segment})


async def assemble_preview(
    delivery: Delivery,
    principal: Principal | None,
    slug: str,
    locale: str | None,
    request_context: RequestContext | None,
    spec: PreviewSpec,
    *,
    drafts: bool,
    visitor_id: str | None,
) -> AssembledPage:
    """The page `slug` decided for the simulated visitor `spec` describes."""
    require_preview(principal)
    delivery.mark_private(PREVIEW_REASON)
    services = delivery.services
    if spec.segment is not None:
        spec = _with_segment(services, spec, spec.segment)
    parsed = await fetch_page(services, slug, drafts=drafts)
    page = parsed.page
    served = served_locale(page, slug, locale)
    facts = delivery.facts(request_context, visitor_id or f"preview-{delivery.visitor.id}")
    profile = None
    if visitor_id is not None:
        profile = (await delivery.profile(visitor_id)).profile
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
    filled = await fill_recommendations(
        services.recommendations,
        page,
        decision,
        rendered,
        targeting,
        profile,
        path=facts.path,
        now=spec.at or services.clock(),
    )
    decision, rendered = filled.decision, filled.rendered
    assembled = AssembledPage(
        page=page,
        version=parsed.version,
        locale=served,
        decision=decision,
        context=targeting,
        rendered=rendered,
        preview=True,
    )
    delivery.add_page(assembled)
    return assembled
