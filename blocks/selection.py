"""Variant selection: which variant of each block this visitor sees, and why.

Order, per block:
1. eligible variants: inside their schedule, matching the locale, the visitor
   in their audiences (any or all), their condition true;
2. the highest priority among them wins (ties go to the earlier variant);
3. otherwise the block's default variant.

Every block gets a `Decision` that says which variant and why. The scope on a
decision records what it read, so a cache policy can be derived from it:
`public` (nothing about the visitor), `audience` (only audience memberships)
or `individual` (a condition over the visitor's own attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from blocks.context import TargetingContext
from blocks.model import Block, Page, Variant

Scope = Literal["public", "audience", "individual"]

_SCOPE_RANK: dict[Scope, int] = {"public": 0, "audience": 1, "individual": 2}

REASON_DEFAULT = "default"
REASON_CONDITION = "condition"
REASON_PRIORITY = "priority"
REASON_PROFILE_UNAVAILABLE = "fallback:profile-unavailable"


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a block shows the variant it shows."""

    block_id: str
    variant_id: str
    reason: str
    rule_id: str | None = None
    score: float | None = None
    experiment: str | None = None
    bucket: str | None = None
    scope: Scope = "public"


@dataclass(frozen=True, slots=True)
class PageDecision:
    """The decisions for every block of a page, in page order."""

    decisions: tuple[Decision, ...]
    personalized: bool

    @property
    def scope(self) -> Scope:
        """The strictest scope any decision read."""
        return strictest(d.scope for d in self.decisions)


def strictest(scopes: object) -> Scope:
    """The most visitor-specific of the given scopes (`public` when empty)."""
    result: Scope = "public"
    for scope in scopes:  # type: ignore[attr-defined]
        if _SCOPE_RANK[scope] > _SCOPE_RANK[result]:
            result = scope
    return result


def _locale_matches(variant: Variant, locale: str | None) -> bool:
    if not variant.locales:
        return True
    if locale is None:
        return False
    language = locale.split("-")[0]
    return any(allowed in (locale, language) for allowed in variant.locales)


def _variant_scope(variant: Variant) -> Scope:
    if variant.condition is not None:
        return "individual"
    if variant.audiences:
        return "audience"
    return "public"


def eligibility(variant: Variant, context: TargetingContext) -> str | None:
    """The reason the variant is eligible for this context, or None if it is not."""
    if variant.schedule is not None and not variant.schedule.contains(context.now):
        return None
    if not _locale_matches(variant, context.locale):
        return None
    reason: str | None = None
    if variant.audiences:
        matched = [name for name in variant.audiences if name in context.audiences]
        if variant.audience_match == "all":
            if len(matched) != len(variant.audiences):
                return None
            reason = "audience:" + "+".join(matched)
        elif not matched:
            return None
        else:
            reason = "audience:" + matched[0]
    if variant.condition is not None:
        if not variant.condition.matches(context.attributes, context.groups):
            return None
        reason = reason or REASON_CONDITION
    return reason or REASON_PRIORITY


def select_variant(block: Block, context: TargetingContext) -> Decision:
    """Choose the variant of `block` for `context` and record why."""
    default = block.default_variant
    if not context.profile_available:
        return Decision(
            block_id=block.id,
            variant_id=default.id,
            reason=REASON_PROFILE_UNAVAILABLE,
            rule_id=None,
        )
    best: Variant | None = None
    best_reason = REASON_DEFAULT
    scope: Scope = "public"
    for variant in block.variants:
        if variant is default:
            continue
        # Whatever a variant's targeting reads, the outcome depends on it,
        # whether it matched or not.
        scope = strictest((scope, _variant_scope(variant)))
        reason = eligibility(variant, context)
        if reason is not None and (best is None or variant.priority > best.priority):
            best, best_reason = variant, reason
    if best is None:
        return Decision(
            block_id=block.id, variant_id=default.id, reason=REASON_DEFAULT, scope=scope
        )
    return Decision(
        block_id=block.id,
        variant_id=best.id,
        reason=best_reason,
        rule_id=best.rule_id or f"{block.id}/{best.id}",
        scope=scope,
    )


def select_page(page: Page, context: TargetingContext) -> PageDecision:
    """Decide every block of `page` for `context` in one call."""
    return PageDecision(
        decisions=tuple(select_variant(block, context) for block in page.blocks),
        personalized=context.profile_available,
    )
