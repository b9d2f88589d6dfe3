"""Variant selection: which variant of each block this visitor sees, and why.

One documented order, per block (docs/experiments.md, docs/editors.md):
0. no profile (or no consent to personalize): the block's default variant;
1. an experiment on the block that enrolls the visitor (its own targeting
   condition, namespace, holdouts, coverage and sticky bucket decide; see
   `blocks.experiments`) serves the assigned arm (reason `experiment`), or a
   stopped experiment's winner (reason `experiment:winner`): experiments come
   before audiences, conditions, priorities and model scores, so assignment
   never depends on the other variants' targeting; an arm unavailable in the
   locale or outside its schedule leaves the block to steps 2-7;
2. eligible variants: inside their schedule, matching the locale, the visitor
   in their audiences (any or all), their condition true;
3. the highest priority among them forms the *tier* (all eligible variants
   sharing that priority, in page order);
4. within a tier of two or more, a model score ranks (ties go to the earlier
   variant); without scores the earlier variant wins;
5. ε-greedy exploration: with probability ε the pick is instead uniform over
   the tier, and every decision records its `propensity`, the probability the
   policy had of choosing it, so logged exposures can be reweighted;
6. when scoring was attempted and failed (timeout, error), the earlier variant
   wins with the reason `fallback:score-timeout` / `fallback:score-error`;
7. no eligible variant: the block's default variant.

Selection happens in two pure phases: `plan_page` (steps 0-3 and 7) and
`rank_page` (steps 4-6), so the caller can score the plan's tiers in between.
`select_page` is both phases without scores or exploration.

Every block gets a `Decision` that says which variant and why. The scope on a
decision records what it read, so a cache policy can be derived from it:
`public` (nothing about the visitor: schedule, locale, the request's own
arguments), `audience` (audience memberships, device, country, consent: the
facts an edge key covers, named in `facts`; or an experiment arm, keyed by its
`experiment` and `variation`) or `individual` (a condition over the visitor's
own attributes, a model score over the visitor's features, a random
exploration draw, or a profile that could not be read). A block's scope is
what *all* its variants' targeting reads, matched or not, so it is the same
for every visitor with the same facts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from blocks.context import TargetingContext
from blocks.experiments import (
    NO_ASSIGNMENTS,
    BlockArm,
    PageAssignments,
    assign_page,
    treatment_variants,
)
from blocks.model import Block, Page, Variant

Scope = Literal["public", "audience", "individual"]

_SCOPE_RANK: dict[Scope, int] = {"public": 0, "audience": 1, "individual": 2}

REASON_DEFAULT = "default"
REASON_CONDITION = "condition"
REASON_PRIORITY = "priority"
REASON_PROFILE_UNAVAILABLE = "fallback:profile-unavailable"
REASON_NO_CONSENT = "fallback:no-consent"
REASON_SCORE = "score"
REASON_EXPLORE = "explore"
FALLBACK_SCORE_TIMEOUT = "fallback:score-timeout"
FALLBACK_SCORE_ERROR = "fallback:score-error"

#: Condition attributes an edge key covers: the page then depends on them only.
EDGE_ATTRIBUTES = frozenset({"device", "country", "audiences"})
#: Condition attributes that come from the request's arguments or the clock,
#: the same for every visitor asking the same URL.
SHARED_ATTRIBUTES = frozenset({"locale", "path", "utm", "hour", "dayOfWeek"})
#: The fact every personalized page reads: whether the visitor allows it.
CONSENT_FACT = "consent"
#: The fact an experiment's blocks read: the visitor's arms.
EXPERIMENT_FACT = "experiments"

#: Model scores by `(block_id, variant_id)`.
Scores = Mapping[tuple[str, str], float]


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a block shows the variant it shows."""

    block_id: str
    variant_id: str
    reason: str
    rule_id: str | None = None
    score: float | None = None
    #: The experiment that decided the block (its key), if one did.
    experiment: str | None = None
    #: The arm: the experiment's variation key (GrowthBook's `meta.key`, the variant id).
    bucket: str | None = None
    scope: Scope = "public"
    #: The probability the policy had of choosing this variant (1.0 without a choice).
    propensity: float = 1.0
    model_version: str | None = None
    #: The tier's variant ids when there was a choice between several.
    candidates: tuple[str, ...] = ()
    #: The visitor facts an `audience` scope read: `audience:<name>`, `audiences`
    #: (every membership), `device`, `country`, `consent`.
    facts: frozenset[str] = frozenset()
    #: The experiment's variation index (0 = control) when an experiment decided the block.
    variation: int | None = None
    #: True when the visitor is in the experiment (an exposure); False for a shipped winner
    #: or a preview's forced variation.
    in_experiment: bool = False


@dataclass(frozen=True, slots=True)
class PageDecision:
    """The decisions for every block of a page, in page order."""

    decisions: tuple[Decision, ...]
    personalized: bool

    @property
    def scope(self) -> Scope:
        """The strictest scope any decision read."""
        return strictest(d.scope for d in self.decisions)

    @property
    def facts(self) -> frozenset[str]:
        """Every visitor fact the decisions read."""
        return frozenset().union(*(d.facts for d in self.decisions))


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


def variant_reads(variant: Variant) -> tuple[Scope, frozenset[str]]:
    """What the variant's targeting reads: its scope and the edge facts involved."""
    scope: Scope = "public"
    facts: set[str] = set()
    if variant.audiences:
        scope = "audience"
        facts.update(f"audience:{name}" for name in variant.audiences)
    if variant.condition is not None:
        attributes = variant.condition.attributes
        if not attributes <= EDGE_ATTRIBUTES | SHARED_ATTRIBUTES:
            return "individual", frozenset()
        read = attributes & EDGE_ATTRIBUTES
        if read:
            scope = "audience"
            facts.update(read)
    return scope, frozenset(facts)


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """An eligible variant of a tier and why it is eligible."""

    variant: Variant
    reason: str


@dataclass(frozen=True, slots=True)
class BlockPlan:
    """One block before ranking: its tier, or the decision when there is no tier."""

    block: Block
    tier: tuple[Candidate, ...]
    scope: Scope
    #: Set when no variant is eligible (or the profile is unavailable).
    default: Decision | None = None
    facts: frozenset[str] = frozenset()

    @property
    def contested(self) -> bool:
        """Whether a choice between several variants remains."""
        return len(self.tier) >= 2


@dataclass(frozen=True, slots=True)
class PagePlan:
    """Every block's plan, in page order."""

    blocks: tuple[BlockPlan, ...]
    personalized: bool

    @property
    def contested(self) -> tuple[BlockPlan, ...]:
        """The blocks whose tier holds two or more variants (what a model may rank)."""
        return tuple(block for block in self.blocks if block.contested)


def _available(variant: Variant, context: TargetingContext) -> bool:
    """Whether the variant may be shown at all: inside its schedule and in the locale."""
    if variant.schedule is not None and not variant.schedule.contains(context.now):
        return False
    return _locale_matches(variant, context.locale)


def _arm_decision(block: Block, arm: BlockArm) -> Decision:
    # Nothing visitor-specific: everyone in the arm gets an equal decision record.
    variant = block.variant(arm.variant_id)
    return Decision(
        block_id=block.id,
        variant_id=variant.id,
        reason=arm.reason,
        rule_id=variant.rule_id or f"{block.id}/{variant.id}",
        experiment=arm.experiment,
        bucket=arm.variation_key,
        # The arm is shared by everyone assigned to it: cacheable per arm, never private.
        scope="audience",
        variation=arm.variation,
        in_experiment=arm.in_experiment,
    )


def _static_reads(
    block: Block, touched: bool, treatments: frozenset[str]
) -> tuple[Scope, frozenset[str]]:
    """The block's scope and edge facts, whoever the visitor is."""
    default = block.default_variant
    # Whatever a variant's targeting reads, the outcome depends on it, whether it
    # matched or not (and whoever the visitor is).
    scope: Scope = "audience" if touched else "public"
    facts: set[str] = {EXPERIMENT_FACT} if touched else set()
    for variant in block.variants:
        if variant is not default and variant.id not in treatments:
            variant_scope, variant_facts = variant_reads(variant)
            scope = strictest((scope, variant_scope))
            facts |= variant_facts
    if scope != "public":
        facts.add(CONSENT_FACT)
    return scope, frozenset(facts) if scope == "audience" else frozenset()


def _block_reads(
    block: Block, touched: bool, treatments: frozenset[str]
) -> tuple[Scope, frozenset[str]]:
    # The same for every visitor: computed once per parsed block, not per request.
    key = ("reads", touched, treatments)
    found: tuple[Scope, frozenset[str]] | None = block.derived.get(key)
    if found is None:
        found = block.derived[key] = _static_reads(block, touched, treatments)
    return found


def plan_block(
    block: Block,
    context: TargetingContext,
    arm: BlockArm | None = None,
    *,
    experimented: bool = False,
    treatments: frozenset[str] = frozenset(),
) -> BlockPlan:
    """The eligible variants of the highest priority of `block`, or its decided decision.

    `arm` is what an experiment decided for the block (see `assign_page`);
    `experimented` says an experiment was run for it, whatever the outcome, so
    the decision depends on the arm and is at least `audience`-scoped;
    `treatments` are variants only an experiment shows, left out here.
    """
    default = block.default_variant
    touched = experimented or arm is not None
    scope, read = _block_reads(block, touched, treatments)
    if not context.profile_available:
        if context.personalization_consent:
            # Degraded, not decided: a page like this is never shared.
            fallback, scope, read = REASON_PROFILE_UNAVAILABLE, "individual", frozenset()
        else:
            fallback = REASON_NO_CONSENT
        decision = Decision(
            block_id=block.id, variant_id=default.id, reason=fallback, scope=scope, facts=read
        )
        return BlockPlan(block=block, tier=(), scope=scope, default=decision, facts=read)
    if arm is not None:
        try:
            armed: Variant | None = block.variant(arm.variant_id)
        except KeyError:
            armed = None
        if armed is not None and _available(armed, context):
            # In an arm, the block shows the arm whatever else it targets: the arm is all
            # it reads (and whether the visitor allows personalization at all).
            arm_facts = frozenset({EXPERIMENT_FACT, CONSENT_FACT})
            decision = replace(_arm_decision(block, arm), facts=arm_facts)
            return BlockPlan(
                block=block, tier=(), scope="audience", default=decision, facts=arm_facts
            )
    tier: list[Candidate] = []
    for variant in block.variants:
        if variant is default or variant.id in treatments:
            continue
        reason = eligibility(variant, context)
        if reason is None:
            continue
        if not tier or variant.priority > tier[0].variant.priority:
            tier = [Candidate(variant, reason)]
        elif variant.priority == tier[0].variant.priority:
            tier.append(Candidate(variant, reason))
    if not tier:
        decision = Decision(
            block_id=block.id,
            variant_id=default.id,
            reason=REASON_DEFAULT,
            scope=scope,
            facts=read,
        )
        return BlockPlan(block=block, tier=(), scope=scope, default=decision, facts=read)
    return BlockPlan(block=block, tier=tuple(tier), scope=scope, facts=read)


def plan_page(
    page: Page, context: TargetingContext, assignments: PageAssignments | None = None
) -> PagePlan:
    """Plan every block of `page` for `context`: experiments, eligibility and priority tiers.

    `assignments` are the page's experiments run for this visitor
    (`blocks.experiments.assign_page`); by default they are run here without
    a global holdout, and sticky buckets to save are not reported.
    """
    if assignments is None:
        assignments = assign_page(page, context) if page.experiments else NO_ASSIGNMENTS
    treatments = dict(page.experiment_only)
    for block_id, variants in treatment_variants(page.experiments).items():
        treatments[block_id] = treatments.get(block_id, frozenset()) | variants
    return PagePlan(
        blocks=tuple(
            plan_block(
                block,
                context,
                assignments.arms.get(block.id),
                experimented=block.id in assignments.touched,
                treatments=treatments.get(block.id, frozenset()),
            )
            for block in page.blocks
        ),
        personalized=context.profile_available,
    )


def _chosen(
    plan: BlockPlan,
    candidate: Candidate,
    reason: str,
    scope: Scope,
    *,
    score: float | None = None,
    propensity: float = 1.0,
    model_version: str | None = None,
) -> Decision:
    variant = candidate.variant
    return Decision(
        block_id=plan.block.id,
        variant_id=variant.id,
        reason=reason,
        rule_id=variant.rule_id or f"{plan.block.id}/{variant.id}",
        score=score,
        scope=scope,
        propensity=propensity,
        model_version=model_version,
        candidates=tuple(c.variant.id for c in plan.tier),
        facts=plan.facts if scope == "audience" else frozenset(),
    )


def _tier_scores(plan: BlockPlan, scores: Scores | None) -> list[float] | None:
    if scores is None:
        return None
    keys = [(plan.block.id, c.variant.id) for c in plan.tier]
    if not all(key in scores for key in keys):
        return None
    return [float(scores[key]) for key in keys]


def rank_block(
    plan: BlockPlan,
    scores: Scores | None,
    *,
    epsilon: float,
    rng: random.Random | None,
    model_version: str | None = None,
    fallback: str | None = None,
) -> Decision:
    """Choose within the block's tier: by score, ε-greedy, or the fallback order."""
    if plan.default is not None:
        return plan.default
    first = plan.tier[0]
    if not plan.contested:
        return _chosen(plan, first, first.reason, plan.scope)
    if fallback is not None:
        # Scoring failed: priority order only, no exploration, a certain choice.
        return _chosen(plan, first, fallback, plan.scope, model_version=model_version)
    tier_scores = _tier_scores(plan, scores)
    exploit = 0
    if tier_scores is not None:
        # max() keeps the first of equal scores: ties go to the earlier variant.
        exploit = max(range(len(tier_scores)), key=tier_scores.__getitem__)
    n = len(plan.tier)
    index, explored = exploit, False
    if epsilon > 0:
        if rng is None:
            raise ValueError("rank_page: an rng is required when epsilon > 0")
        if rng.random() < epsilon:
            index, explored = rng.randrange(n), True
    propensity = (1.0 - epsilon) * (index == exploit) + epsilon / n
    chosen = plan.tier[index]
    if explored:
        reason = REASON_EXPLORE
    elif tier_scores is not None:
        reason = REASON_SCORE
    else:
        reason = chosen.reason
    # A score reads the visitor's features and a draw is per request: never shared.
    random_or_scored = tier_scores is not None or epsilon > 0
    return _chosen(
        plan,
        chosen,
        reason,
        "individual" if random_or_scored else plan.scope,
        score=None if tier_scores is None else tier_scores[index],
        propensity=propensity,
        model_version=model_version if tier_scores is not None else None,
    )


def rank_page(
    plan: PagePlan,
    scores: Scores | None,
    *,
    epsilon: float,
    rng: random.Random | None,
    model_version: str | None = None,
    fallback: str | None = None,
) -> PageDecision:
    """Rank every block's tier (see the module docstring for the order)."""
    return PageDecision(
        decisions=tuple(
            rank_block(
                block,
                scores,
                epsilon=epsilon,
                rng=rng,
                model_version=model_version,
                fallback=fallback,
            )
            for block in plan.blocks
        ),
        personalized=plan.personalized,
    )


#: Prefixed to the reason of decisions made from a possibly stale profile.
STALE_PREFIX = "stale:"


def mark_stale(decision: PageDecision) -> PageDecision:
    """Decisions made from a possibly stale profile: they say so, and are never shared."""
    return replace(
        decision,
        decisions=tuple(
            replace(d, reason=STALE_PREFIX + d.reason, scope="individual", facts=frozenset())
            for d in decision.decisions
        ),
    )


def select_variant(block: Block, context: TargetingContext) -> Decision:
    """Choose the variant of `block` for `context` and record why (no scores)."""
    return rank_block(plan_block(block, context), None, epsilon=0.0, rng=None)


def select_page(
    page: Page, context: TargetingContext, assignments: PageAssignments | None = None
) -> PageDecision:
    """Decide every block of `page` for `context` in one call (no scores)."""
    return rank_page(plan_page(page, context, assignments), None, epsilon=0.0, rng=None)
