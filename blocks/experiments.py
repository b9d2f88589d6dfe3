"""Experiment assignment on blocks, bit for bit GrowthBook's (pure).

The five primitives carry GrowthBook's SDK names and behaviour and are
GrowthBook's own code (the `growthbook` package): :func:`hash` (FNV-1a 32,
hash versions 1 and 2), :func:`bucket_ranges`, :func:`choose_variation`,
:func:`in_namespace` and :func:`equal_weights`. They pass the SDKs' shared
`cases.json` vectors (tests/experiments/data).

:func:`run_experiment` follows the steps of GrowthBook's `runExperiment`:
forced variation (preview), status and time window, the hash attribute (its
fallback attribute only with sticky bucketing, as in GrowthBook), the sticky
bucket, namespace, targeting condition, bucket ranges from weights and
coverage, a bucket version that blocks older assignments, and the sticky
bucket to save. Tessera adds two exclusions before any of that: a global
holdout (a share of all visitors that never enters an experiment) and the
experiment's own holdout share. Sticky buckets are read the way Tessera
stores them, in the visitor's profile: every assignment document the profile
holds belongs to this person, so the document of the hash attribute wins,
then the fallback attribute's, then any other (an anonymous visitor's
assignment survives `identify`).

:func:`assign_page` runs every experiment of a page for one visitor, in
definition order, each block taken by the first experiment that enrolls the
visitor; its result feeds `blocks.selection.plan_page`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from growthbook.core import chooseVariation, gbhash, getBucketRanges, getEqualWeights, inNamespace

from blocks.conditions import CompiledCondition

if TYPE_CHECKING:
    from blocks.context import TargetingContext
    from blocks.model import Page

__all__ = [
    "REASON_EXPERIMENT",
    "REASON_FORCED",
    "REASON_WINNER",
    "Allocation",
    "Assignment",
    "BlockArm",
    "Experiment",
    "Factor",
    "PageAssignments",
    "Plan",
    "StickyDoc",
    "assign_page",
    "bucket_ranges",
    "choose_variation",
    "equal_weights",
    "hash",
    "in_namespace",
    "run_experiment",
    "sticky_key",
    "unit_of",
]

Status = Literal["draft", "running", "stopped"]
Design = Literal["single", "factorial", "listed"]

REASON_EXPERIMENT = "experiment"
REASON_WINNER = "experiment:winner"
REASON_FORCED = "preview:forced"

#: Tessera's attribute names for the two identities it knows.
VISITOR_ID = "visitorId"
USER_ID = "userId"
#: What an experiment measures when it does not say (the first is the primary metric).
DEFAULT_METRICS = ("conversion", "clickThrough", "revenue")
#: The seed of the global holdout's hash (one draw per visitor, shared by every experiment).
GLOBAL_HOLDOUT_SEED = "tessera:global-holdout"


# -- GrowthBook's primitives ---------------------------------------------------------------


def hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's hash of `value` with `seed`: a float in [0, 1), None for an unknown version."""
    result: float | None = gbhash(seed, value, version)
    return result


def bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """GrowthBook's bucket ranges: one `[start, end)` per variation, scaled by coverage."""
    ranges: list[tuple[float, float]] = getBucketRanges(
        num_variations, coverage, list(weights) if weights is not None else None
    )
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The variation whose range holds `n`, or -1 when none does (outside coverage)."""
    index: int = chooseVariation(n, list(ranges))
    return index


def in_namespace(user_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether `user_id` falls in the namespace's `[start, end)` share."""
    inside: bool = inNamespace(user_id, namespace)
    return inside


def equal_weights(num_variations: int) -> list[float]:
    """`num_variations` equal weights summing to 1 (empty below 1)."""
    weights: list[float] = getEqualWeights(num_variations)
    return weights


# -- the experiment model ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Factor:
    """One block an experiment varies, and its arms (variant ids) in order."""

    block_id: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the editor planned: total users, the effect to detect, the error rates."""

    users: int | None = None
    mde: float = 0.10
    alpha: float = 0.05
    power: float = 0.80
    baseline: float | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment: its variations (one variant per factor block each) and how to assign them."""

    key: str
    factors: tuple[Factor, ...]
    #: Per variation, one variant id per factor (in factor order).
    combinations: tuple[tuple[str, ...], ...]
    #: GrowthBook's variation keys (`meta[i].key`), stored in sticky buckets.
    variation_keys: tuple[str, ...]
    design: Design = "single"
    name: str | None = None
    weights: tuple[float, ...] | None = None
    coverage: float = 1.0
    hash_attribute: str = USER_ID
    fallback_attribute: str | None = VISITOR_ID
    seed: str | None = None
    hash_version: int = 2
    status: Status = "draft"
    start: datetime | None = None
    end: datetime | None = None
    condition: CompiledCondition | None = None
    namespace: tuple[str, float, float] | None = None
    holdout: float = 0.0
    bucket_version: int = 0
    min_bucket_version: int = 0
    sticky: bool = True
    #: The variation a stopped experiment serves to everyone, if any.
    winner: int | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    plan: Plan = field(default_factory=Plan)
    #: The block whose variant carries the definition.
    defined_in: str = ""

    @property
    def num_variations(self) -> int:
        """How many variations (arms, or combinations of arms)."""
        return len(self.combinations)

    @property
    def block_ids(self) -> tuple[str, ...]:
        """The blocks the experiment varies."""
        return tuple(factor.block_id for factor in self.factors)

    def variants_of(self, variation: int) -> dict[str, str]:
        """Block id → variant id for one variation."""
        return {
            factor.block_id: variant_id
            for factor, variant_id in zip(self.factors, self.combinations[variation], strict=True)
        }

    def treatments(self) -> dict[str, frozenset[str]]:
        """Block id → the variants only this experiment shows (all but the control's)."""
        control = self.combinations[0]
        out: dict[str, frozenset[str]] = {}
        for index, factor in enumerate(self.factors):
            shown = {row[index] for row in self.combinations}
            out[factor.block_id] = frozenset(shown - {control[index]})
        return out

    def running(self, now: datetime) -> bool:
        """Whether it enrolls visitors at `now`: running and inside its start/end window."""
        if self.status != "running":
            return False
        if self.start is not None and now < self.start:
            return False
        return not (self.end is not None and now >= self.end)

    def effective_weights(self) -> list[float]:
        """The weights bucketing uses (GrowthBook: invalid weights become equal weights)."""
        ranges = bucket_ranges(self.num_variations, 1.0, self.weights)
        return [end - start for start, end in ranges]


@dataclass(frozen=True, slots=True)
class Allocation:
    """Site-wide experiment settings: the global holdout's share of visitors."""

    holdout: float = 0.0
    holdout_seed: str = GLOBAL_HOLDOUT_SEED


@dataclass(frozen=True, slots=True)
class Assignment:
    """GrowthBook's experiment result, plus why a visitor was not enrolled."""

    key: str
    in_experiment: bool
    #: The variation index (0 when not in the experiment, as in GrowthBook).
    variation: int
    variation_key: str
    hash_attribute: str
    hash_value: str
    hash_used: bool = False
    bucket: float | None = None
    sticky_used: bool = False
    forced: bool = False
    #: `enrolled`, `forced`, or why not: `inactive`, `no-hash-value`, `global-holdout`,
    #: `holdout`, `blocked`, `namespace`, `condition`, `coverage`, `stopped`, `hash-version`,
    #: `too-few-variations`.
    status: str = "enrolled"


#: GrowthBook's sticky bucket document: `{attributeName, attributeValue, assignments}`.
StickyDoc = Mapping[str, Any]


def sticky_key(attribute: str, value: str) -> str:
    """GrowthBook's key of a sticky bucket document: `attribute||value`."""
    return f"{attribute}||{value}"


def _assignment_key(experiment: Experiment, version: int) -> str:
    return f"{experiment.key}__{version}"


def _hashable(value: Any) -> str:
    """The attribute value as GrowthBook hashes it, or "" when it cannot identify anyone.

    Non-empty strings and non-zero integers count (booleans and other values do
    not); an integer hashes as its decimal digits, like JavaScript's `String()`.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return str(value) if abs(value) < 10**21 else ""
    return ""


def _hash_value(
    attributes: Mapping[str, Any], attribute: str, fallback: str | None
) -> tuple[str, str]:
    value = _hashable(attributes.get(attribute))
    if not value and fallback:
        fallback_value = _hashable(attributes.get(fallback))
        if fallback_value:
            return fallback, fallback_value
    return attribute, value


def _sticky_assignments(
    docs: Mapping[str, StickyDoc], hash_key: str | None, fallback_key: str | None
) -> dict[str, str]:
    """Every assignment of this person: other documents, then the fallback's, then the hash's."""
    merged: dict[str, str] = {}
    ordered = [key for key in docs if key not in (hash_key, fallback_key)]
    ordered += [key for key in (fallback_key, hash_key) if key is not None and key in docs]
    for key in ordered:
        assignments = docs[key].get("assignments")
        if isinstance(assignments, Mapping):
            merged.update({str(k): str(v) for k, v in assignments.items()})
    return merged


def _not_in(
    experiment: Experiment, attribute: str, value: str, status: str, *, sticky_used: bool = False
) -> Assignment:
    key = experiment.variation_keys[0] if experiment.variation_keys else "0"
    return Assignment(
        key=experiment.key,
        in_experiment=False,
        variation=0,
        variation_key=key,
        hash_attribute=attribute,
        hash_value=value,
        sticky_used=sticky_used,
        status=status,
    )


def in_holdout(share: float, seed: str, value: str) -> bool:
    """Whether `value` falls in a holdout of `share` (hash version 2 with `seed`)."""
    if share <= 0 or not value:
        return False
    n = hash(seed, value, 2)
    return n is not None and n < share


def run_experiment(
    experiment: Experiment,
    attributes: Mapping[str, Any],
    *,
    now: datetime,
    sticky_docs: Mapping[str, StickyDoc] | None = None,
    forced: int | None = None,
    groups: Mapping[str, Sequence[Any]] | None = None,
    allocation: Allocation | None = None,
    sticky: bool = True,
) -> tuple[Assignment, StickyDoc | None]:
    """Assign one visitor: the result, and the sticky document to save (None if unchanged)."""
    attribute = experiment.hash_attribute
    if experiment.num_variations < 2:
        return _not_in(experiment, attribute, "", "too-few-variations"), None
    if forced is not None:
        inside = 0 <= forced < experiment.num_variations
        attribute, value = _hash_value(attributes, attribute, None)
        return Assignment(
            key=experiment.key,
            in_experiment=inside,
            variation=forced if inside else 0,
            variation_key=experiment.variation_keys[forced if inside else 0],
            hash_attribute=attribute,
            hash_value=value,
            forced=inside,
            status="forced" if inside else "inactive",
        ), None
    if not experiment.running(now) and experiment.status != "stopped":
        return _not_in(experiment, attribute, "", "inactive"), None
    use_sticky = sticky and experiment.sticky
    fallback = experiment.fallback_attribute if use_sticky else None
    attribute, value = _hash_value(attributes, attribute, fallback)
    if not value:
        return _not_in(experiment, attribute, value, "no-hash-value"), None
    global_share = allocation.holdout if allocation is not None else 0.0
    if allocation is not None and in_holdout(global_share, allocation.holdout_seed, value):
        return _not_in(experiment, attribute, value, "global-holdout"), None
    if in_holdout(experiment.holdout, f"{experiment.seed or experiment.key}:holdout", value):
        return _not_in(experiment, attribute, value, "holdout"), None
    if experiment.status == "stopped":
        # GrowthBook assigns, then leaves a stopped experiment: nothing to hash or save.
        return _not_in(experiment, attribute, value, "stopped"), None

    docs = sticky_docs or {}
    assigned, found, blocked = -1, False, False
    if use_sticky:
        # As GrowthBook: the hash attribute's own document and the fallback attribute's.
        own = _hashable(attributes.get(experiment.hash_attribute))
        hash_key = sticky_key(experiment.hash_attribute, own) if own else None
        fallback_value = _hashable(attributes.get(fallback)) if fallback else ""
        fallback_key = sticky_key(fallback, fallback_value) if fallback and fallback_value else None
        assignments = _sticky_assignments(docs, hash_key, fallback_key)
        blocked = any(
            _assignment_key(experiment, version) in assignments
            for version in range(experiment.min_bucket_version)
        )
        stored = assignments.get(_assignment_key(experiment, experiment.bucket_version))
        if not blocked and stored is not None and stored in experiment.variation_keys:
            assigned, found = experiment.variation_keys.index(stored), True

    if not found:
        if experiment.namespace is not None and not in_namespace(value, experiment.namespace):
            return _not_in(experiment, attribute, value, "namespace"), None
        condition = experiment.condition
        if condition is not None and not condition.matches(attributes, groups):
            return _not_in(experiment, attribute, value, "condition"), None

    n = hash(experiment.seed or experiment.key, value, experiment.hash_version)
    if n is None:
        return _not_in(experiment, attribute, value, "hash-version"), None
    if blocked:
        return _not_in(experiment, attribute, value, "blocked", sticky_used=True), None
    if not found:
        ranges = bucket_ranges(experiment.num_variations, experiment.coverage, experiment.weights)
        assigned = choose_variation(n, ranges)
    if assigned < 0:
        return _not_in(experiment, attribute, value, "coverage"), None

    result = Assignment(
        key=experiment.key,
        in_experiment=True,
        variation=assigned,
        variation_key=experiment.variation_keys[assigned],
        hash_attribute=attribute,
        hash_value=value,
        hash_used=True,
        bucket=n,
        sticky_used=found,
    )
    if not use_sticky:
        return result, None
    key = sticky_key(attribute, value)
    existing = docs.get(key, {}).get("assignments") or {}
    entry = {_assignment_key(experiment, experiment.bucket_version): result.variation_key}
    merged = {**existing, **entry}
    if merged == dict(existing):
        return result, None
    return result, {"attributeName": attribute, "attributeValue": value, "assignments": merged}


# -- a page's experiments ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockArm:
    """What an experiment decided for one block."""

    experiment: str
    variation: int
    variation_key: str
    variant_id: str
    #: `experiment`, `experiment:winner` or `preview:forced`.
    reason: str
    in_experiment: bool
    assignment: Assignment | None = None


@dataclass(frozen=True, slots=True)
class PageAssignments:
    """Every experiment of a page, run for one visitor."""

    arms: Mapping[str, BlockArm] = field(default_factory=dict)
    results: tuple[Assignment, ...] = ()
    #: Sticky bucket documents to save in the visitor's profile.
    sticky_docs: tuple[StickyDoc, ...] = ()
    #: Blocks whose outcome depended on an experiment (enrolled or not).
    touched: frozenset[str] = frozenset()


NO_ASSIGNMENTS = PageAssignments()


def hash_attributes(context: TargetingContext) -> dict[str, Any]:
    """The targeting attributes plus `visitorId`, the names experiments hash on."""
    attributes = dict(context.attributes)
    attributes.setdefault(VISITOR_ID, attributes.get("id"))
    return attributes


def unit_of(experiment: Experiment, attributes: Mapping[str, Any]) -> str | None:
    """What the experiment hashes for these attributes, `attribute:value` (the analysis unit).

    The hash attribute when it has a value, else the fallback attribute (as
    `run_experiment` with sticky buckets); None when neither has one.
    """
    fallback = experiment.fallback_attribute if experiment.sticky else None
    attribute, value = _hash_value(attributes, experiment.hash_attribute, fallback)
    return f"{attribute}:{value}" if value else None


def _winner_arms(experiment: Experiment) -> dict[str, BlockArm]:
    assert experiment.winner is not None
    variation = experiment.winner
    return {
        block_id: BlockArm(
            experiment=experiment.key,
            variation=variation,
            variation_key=experiment.variation_keys[variation],
            variant_id=variant_id,
            reason=REASON_WINNER,
            in_experiment=False,
        )
        for block_id, variant_id in experiment.variants_of(variation).items()
    }


def _enrolled_arms(experiment: Experiment, result: Assignment) -> dict[str, BlockArm]:
    return {
        block_id: BlockArm(
            experiment=experiment.key,
            variation=result.variation,
            variation_key=result.variation_key,
            variant_id=variant_id,
            reason=REASON_FORCED if result.forced else REASON_EXPERIMENT,
            # A forced variation (preview, QA) is never an exposure.
            in_experiment=result.in_experiment and not result.forced,
            assignment=result,
        )
        for block_id, variant_id in experiment.variants_of(result.variation).items()
    }


def treatment_variants(experiments: Iterable[Experiment]) -> dict[str, frozenset[str]]:
    """Block id → variants shown only by an experiment, never by normal selection.

    The first variation is the control: outside the experiment (not enrolled,
    a draft, stopped without a winner) the block is chosen as if the other
    arms did not exist.
    """
    out: dict[str, frozenset[str]] = {}
    for experiment in experiments:
        for block_id, variants in experiment.treatments().items():
            out[block_id] = out.get(block_id, frozenset()) | variants
    return out


def _page_blocks(page: Page) -> set[str]:
    return {block.id for block in page.blocks}


def assign_page(
    page: Page,
    context: TargetingContext,
    allocation: Allocation | None = None,
    *,
    forced: Mapping[str, int] | None = None,
    sticky: bool = True,
) -> PageAssignments:
    """Run the page's experiments for the visitor `context` describes (in definition order)."""
    experiments: Iterable[Experiment] = page.experiments
    if not context.profile_available or not page.experiments:
        # Without a profile there is no consent to read and no sticky bucket: defaults only.
        return NO_ASSIGNMENTS
    forced = forced or {}
    attributes = hash_attributes(context)
    docs: dict[str, StickyDoc] = dict(context.sticky_buckets)
    present = _page_blocks(page)
    arms: dict[str, BlockArm] = {}
    results: list[Assignment] = []
    saved: list[StickyDoc] = []
    touched: set[str] = set()
    for experiment in experiments:
        blocks = [block_id for block_id in experiment.block_ids if block_id in present]
        if not blocks or any(block_id in arms for block_id in blocks):
            continue  # an earlier experiment already decided one of its blocks
        if experiment.status == "draft" and experiment.key not in forced:
            continue
        touched.update(blocks)
        result, doc = run_experiment(
            experiment,
            attributes,
            now=context.now,
            sticky_docs=docs,
            forced=forced.get(experiment.key),
            groups=context.groups,
            allocation=allocation,
            sticky=sticky,
        )
        results.append(result)
        if doc is not None:
            docs[sticky_key(doc["attributeName"], doc["attributeValue"])] = doc
            saved.append(doc)
        if result.in_experiment:
            chosen = _enrolled_arms(experiment, result)
        elif (
            experiment.status == "stopped"
            and experiment.winner is not None
            and result.status not in ("global-holdout", "holdout")
        ):
            chosen = _winner_arms(experiment)
        else:
            continue
        arms.update({block_id: arm for block_id, arm in chosen.items() if block_id in present})
    return PageAssignments(
        arms=arms, results=tuple(results), sticky_docs=tuple(saved), touched=frozenset(touched)
    )
