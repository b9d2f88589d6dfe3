"""Preview: the page as a simulated visitor sees it (pure).

An editor's preview may simulate audience memberships, a learned segment,
override targeting attributes by dot path, pick a point in time (for schedules), force a
variant per block and force an experiment's variation (QA: the arm is shown
with reason `preview:forced` and is never an exposure). Every decision a
preview makes is `individual`, so no cache ever shares it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from blocks.audiences import AudienceSet
from blocks.context import TargetingContext
from blocks.model import Page
from blocks.selection import Decision, PageDecision

REASON_FORCED = "preview:forced"


class PreviewError(ValueError):
    """A preview request that cannot be honoured; `path` names the input field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class PreviewSpec:
    """What to simulate: memberships, attributes, time and forced variants."""

    audiences: tuple[str, ...] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    forced: Mapping[str, str] = field(default_factory=dict)
    #: Experiment key → the variation index to show.
    variations: Mapping[str, int] = field(default_factory=dict)
    #: A learned segment to simulate (its label or id); resolved by the caller.
    segment: str | None = None


def check_variations(page: Page, variations: Mapping[str, int]) -> None:
    """Refuse forced variations of experiments the page does not have, or out of range."""
    for key, variation in variations.items():
        experiment = page.experiment(key)
        if experiment is None:
            known = ", ".join(e.key for e in page.experiments) or "(none)"
            raise PreviewError(
                "preview.experiments",
                f"page {page.slug!r} has no experiment {key!r}; experiments: {known}",
            )
        if not 0 <= variation < experiment.num_variations:
            raise PreviewError(
                "preview.experiments",
                f"experiment {key!r} has variations 0 to {experiment.num_variations - 1} "
                f"({', '.join(experiment.variation_keys)}), not {variation}",
            )


def override_attributes(
    attributes: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """A copy of `attributes` with each `dot.path` in `overrides` set to its value."""
    result = copy.deepcopy(dict(attributes))
    for path, value in overrides.items():
        parts = path.split(".")
        if not path or any(not part for part in parts):
            raise PreviewError(f"preview.attributes.{path}", "not a dot path such as 'cart.value'")
        target = result
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = value
    return result


def simulate(
    context: TargetingContext, spec: PreviewSpec, audiences: AudienceSet
) -> TargetingContext:
    """The context with the spec's attributes and audience memberships applied."""
    attributes = override_attributes(context.attributes, spec.attributes)
    if spec.audiences is not None:
        unknown = sorted(name for name in spec.audiences if name not in audiences)
        if unknown:
            known = ", ".join(sorted(a.name for a in audiences))
            raise PreviewError(
                "preview.audiences", f"unknown audience(s) {unknown}; known: {known}"
            )
        members = frozenset(spec.audiences)
    else:
        members = audiences.memberships(attributes, context.groups)
    attributes["audiences"] = sorted(members)
    return replace(context, attributes=attributes, audiences=members, profile_available=True)


def force_variants(page: Page, decision: PageDecision, forced: Mapping[str, str]) -> PageDecision:
    """Decisions with the forced variants applied, all marked individual."""
    blocks = {block.id: block for block in page.blocks}
    for block_id, variant_id in forced.items():
        block = blocks.get(block_id)
        if block is None:
            raise PreviewError(
                "preview.variants",
                f"page {page.slug!r} has no block {block_id!r}; blocks: {', '.join(blocks)}",
            )
        if variant_id not in {v.id for v in block.variants}:
            ids = ", ".join(v.id for v in block.variants)
            raise PreviewError(
                "preview.variants",
                f"block {block_id!r} has no variant {variant_id!r}; variants: {ids}",
            )
    decisions: Sequence[Decision] = [
        Decision(
            block_id=record.block_id,
            variant_id=forced[record.block_id],
            reason=REASON_FORCED,
            scope="individual",
        )
        if record.block_id in forced
        else replace(record, scope="individual")
        for record in decision.decisions
    ]
    return PageDecision(decisions=tuple(decisions), personalized=decision.personalized)
