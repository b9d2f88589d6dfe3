"""The `experiment` metadata field: validation and compilation into an `Experiment`.

An experiment is defined once, on one variant of a block (usually its
control). A single-block experiment lists that block's variants as its
`variations`; a multivariate one lists `factors` (block id → variant ids of
blocks on the same page) and varies them together, as every combination
(`design: factorial`) or as listed `combinations`. The same checks serve the
parser (which drops an experiment with an error, so its blocks are served
normally) and the linter (which reports each problem with its field path).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from blocks.conditions import ROOT, compile_condition
from blocks.experiments import DEFAULT_METRICS, USER_ID, VISITOR_ID, Experiment, Factor, Plan

KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
METRIC_PATTERN = r"^(conversion|clickThrough|revenue|custom:[A-Za-z0-9_-]{1,64})$"
#: GrowthBook replaces weights summing outside this band by equal weights; Tessera refuses them.
WEIGHT_SUM = (0.99, 1.01)
MAX_VARIATIONS = 64


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One problem in an experiment definition; `path` is relative to the `experiment` field."""

    path: str
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True, slots=True)
class ArmInfo:
    """What an experiment definition needs to know about one variant."""

    weight: float | None
    targeted: bool


#: Block id → variant id → what the definition needs to know about it.
PageArms = Mapping[str, Mapping[str, ArmInfo]]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NamespaceDoc(_Doc):
    """`namespace {name start end}`: the experiment takes `[start, end)` of that namespace."""

    name: str = Field(min_length=1, max_length=64)
    start: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)


class PlanDoc(_Doc):
    """`plan {users mde alpha power baseline}`: the sample size and effect the test is built for."""

    users: int | None = Field(default=None, gt=0)
    mde: float = Field(default=0.10, gt=0, le=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.80, gt=0, lt=1)
    baseline: float | None = Field(default=None, gt=0, lt=1)


class ExperimentDoc(_Doc):
    """The `experiment` field of a variant, as editors write it."""

    key: str = Field(pattern=KEY_PATTERN)
    name: str | None = Field(default=None, max_length=200)
    variations: list[str] | None = Field(default=None, min_length=2, max_length=MAX_VARIATIONS)
    factors: dict[str, list[str]] | None = None
    design: Literal["factorial", "listed"] | None = None
    combinations: list[dict[str, str]] | None = Field(
        default=None, min_length=2, max_length=MAX_VARIATIONS
    )
    weights: list[float] | None = None
    coverage: float = Field(default=1.0, ge=0, le=1)
    hash_attribute: str = Field(default=USER_ID, alias="hashAttribute", pattern=ATTRIBUTE_PATTERN)
    fallback_attribute: str | None = Field(
        default=VISITOR_ID, alias="fallbackAttribute", pattern=ATTRIBUTE_PATTERN
    )
    seed: str | None = Field(default=None, min_length=1, max_length=128)
    hash_version: Literal[1, 2] = Field(default=2, alias="hashVersion")
    status: Literal["draft", "running", "stopped"] = "draft"
    start: datetime | None = None
    end: datetime | None = None
    condition: dict[str, Any] | None = None
    namespace: NamespaceDoc | None = None
    holdout: float = Field(default=0.0, ge=0, lt=1)
    bucket_version: int = Field(default=0, ge=0, le=999_999, alias="bucketVersion")
    min_bucket_version: int = Field(default=0, ge=0, le=999_999, alias="minBucketVersion")
    sticky: bool = True
    winner: str | None = None
    metrics: list[str] | None = Field(default=None, min_length=1, max_length=20)
    plan: PlanDoc | None = None

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not re.fullmatch(METRIC_PATTERN, name):
                raise ValueError(
                    f"unknown metric {name!r}: use conversion, clickThrough, revenue "
                    "or custom:<event name>"
                )
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a metric is listed twice")
        return value

    @field_validator("weights")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(w) and w >= 0 for w in value):
            raise ValueError("weights must be finite numbers of 0 or more")
        return value


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _loc(error: Mapping[str, Any]) -> str:
    path = ""
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _validation_problems(exc: ValidationError) -> list[SpecProblem]:
    return [
        SpecProblem(_loc(error), "experiment.invalid", str(error.get("msg", "invalid")))
        for error in exc.errors(include_url=False)
    ]


def _arms_problems(
    block_id: str, arms: Sequence[str], page: PageArms, path: str
) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    variants = page.get(block_id)
    if variants is None:
        known = ", ".join(sorted(page)) or "(none)"
        return [
            SpecProblem(
                path, "experiment.invalid", f"the page has no block {block_id!r}; blocks: {known}"
            )
        ]
    if len(arms) < 2:
        problems.append(SpecProblem(path, "experiment.invalid", "needs at least two variants"))
    seen: set[str] = set()
    for index, variant_id in enumerate(arms):
        if variant_id in seen:
            problems.append(
                SpecProblem(
                    f"{path}[{index}]", "experiment.invalid", f"variant {variant_id!r} is twice"
                )
            )
        seen.add(variant_id)
        if variant_id not in variants:
            known = ", ".join(variants) or "(none)"
            problems.append(
                SpecProblem(
                    f"{path}[{index}]",
                    "experiment.invalid",
                    f"block {block_id!r} has no valid variant {variant_id!r}; variants: {known}",
                )
            )
    return problems


def _combinations(
    doc: ExperimentDoc, factors: list[Factor], problems: list[SpecProblem]
) -> list[tuple[str, ...]]:
    if doc.variations is not None:
        return [(variant,) for variant in factors[0].variants]
    if doc.design == "listed" or (doc.design is None and doc.combinations is not None):
        if doc.combinations is None:
            problems.append(
                SpecProblem("combinations", "experiment.invalid", "a listed design needs them")
            )
            return []
        out: list[tuple[str, ...]] = []
        blocks = [factor.block_id for factor in factors]
        for index, combination in enumerate(doc.combinations):
            where = f"combinations[{index}]"
            if set(combination) != set(blocks):
                problems.append(
                    SpecProblem(
                        where,
                        "experiment.invalid",
                        f"must name exactly the factors' blocks: {', '.join(blocks)}",
                    )
                )
                continue
            row = tuple(combination[block] for block in blocks)
            for factor, variant in zip(factors, row, strict=True):
                if variant not in factor.variants:
                    problems.append(
                        SpecProblem(
                            f"{where}.{factor.block_id}",
                            "experiment.invalid",
                            f"{variant!r} is not one of the factor's variants "
                            f"({', '.join(factor.variants)})",
                        )
                    )
            if row in out:
                problems.append(SpecProblem(where, "experiment.invalid", "listed twice"))
            out.append(row)
        return out
    if doc.combinations is not None:
        problems.append(
            SpecProblem("combinations", "experiment.invalid", "combinations need `design: listed`")
        )
    # Counted before they are listed: 40 factors of 2 arms are 2^40 combinations.
    count = math.prod(len(factor.variants) for factor in factors)
    if count > MAX_VARIATIONS:
        problems.append(
            SpecProblem(
                "factors",
                "experiment.invalid",
                f"{count} combinations; at most {MAX_VARIATIONS}",
            )
        )
        return []
    return list(itertools.product(*(factor.variants for factor in factors)))


def _weights(
    doc: ExperimentDoc,
    factors: list[Factor],
    count: int,
    page: PageArms,
    problems: list[SpecProblem],
) -> tuple[float, ...] | None:
    if doc.weights is not None:
        if len(doc.weights) != count:
            problems.append(
                SpecProblem(
                    "weights",
                    "experiment.invalid",
                    f"{len(doc.weights)} weights for {count} variations",
                )
            )
            return None
        total = sum(doc.weights)
        if not WEIGHT_SUM[0] <= total <= WEIGHT_SUM[1]:
            problems.append(
                SpecProblem(
                    "weights",
                    "experiment.invalid",
                    f"the weights sum to {total:g}, not 1 (GrowthBook would split equally)",
                )
            )
            return None
        return tuple(doc.weights)
    if doc.variations is None:
        return None
    # A single-block experiment may take its split from the arms' own `weight` fields.
    arm_weights = [page[factors[0].block_id][v].weight for v in factors[0].variants]
    if any(w is None for w in arm_weights):
        return None
    total = sum(w for w in arm_weights if w is not None)
    if total <= 0:
        problems.append(
            SpecProblem("variations", "experiment.invalid", "the arms' weights are all 0")
        )
        return None
    return tuple((w or 0.0) / total for w in arm_weights)


def compile_experiment(
    document: Any, block_id: str, page: PageArms
) -> tuple[Experiment | None, list[SpecProblem]]:
    """The experiment a variant's `experiment` field defines, or None with its errors."""
    try:
        doc = ExperimentDoc.model_validate(document)
    except ValidationError as exc:
        return None, _validation_problems(exc)
    problems: list[SpecProblem] = []
    factors: list[Factor] = []
    if (doc.variations is None) == (doc.factors is None):
        problems.append(
            SpecProblem(
                ROOT,
                "experiment.invalid",
                "give either `variations` (this block's variants) or `factors` "
                "(block id: variants, for several blocks)",
            )
        )
    elif doc.variations is not None:
        problems += _arms_problems(block_id, doc.variations, page, "variations")
        factors.append(Factor(block_id, tuple(doc.variations)))
        if doc.design is not None or doc.combinations is not None:
            problems.append(
                SpecProblem(
                    "design", "experiment.invalid", "`design` and `combinations` need `factors`"
                )
            )
    else:
        assert doc.factors is not None
        if not doc.factors:
            problems.append(SpecProblem("factors", "experiment.invalid", "no factor given"))
        for factor_block, arms in doc.factors.items():
            problems += _arms_problems(factor_block, arms, page, f"factors.{factor_block}")
            factors.append(Factor(factor_block, tuple(arms)))
    if problems:
        return None, problems
    combinations = _combinations(doc, factors, problems)
    if problems or len(combinations) < 2:
        if not problems:
            problems.append(SpecProblem(ROOT, "experiment.invalid", "needs two variations"))
        return None, problems
    keys = tuple("+".join(row) for row in combinations)
    weights = _weights(doc, factors, len(combinations), page, problems)
    start, end = _utc(doc.start), _utc(doc.end)
    if start is not None and end is not None and end <= start:
        problems.append(
            SpecProblem("end", "experiment.invalid", "the experiment ends before it starts")
        )
    condition = None
    if doc.condition is not None:
        condition = compile_condition(doc.condition)
        for problem in condition.problems:
            where = "condition" if problem.path == ROOT else f"condition.{problem.path}"
            problems.append(SpecProblem(where, "experiment.invalid", problem.message))
    namespace = None
    if doc.namespace is not None:
        if doc.namespace.end <= doc.namespace.start:
            problems.append(
                SpecProblem("namespace.end", "experiment.invalid", "must be above `start`")
            )
        namespace = (doc.namespace.name, doc.namespace.start, doc.namespace.end)
    if doc.min_bucket_version > doc.bucket_version:
        problems.append(
            SpecProblem(
                "minBucketVersion",
                "experiment.invalid",
                "must not exceed `bucketVersion` (it would block every visitor)",
            )
        )
    winner = None
    if doc.winner is not None:
        if doc.winner not in keys:
            problems.append(
                SpecProblem(
                    "winner",
                    "experiment.invalid",
                    f"{doc.winner!r} is not a variation; variations: {', '.join(keys)}",
                )
            )
        else:
            winner = keys.index(doc.winner)
    if problems:
        return None, problems
    plan = doc.plan or PlanDoc()
    experiment = Experiment(
        key=doc.key,
        factors=tuple(factors),
        combinations=tuple(combinations),
        variation_keys=keys,
        design="single" if doc.variations is not None else (doc.design or "factorial"),
        name=doc.name,
        weights=weights,
        coverage=doc.coverage,
        hash_attribute=doc.hash_attribute,
        fallback_attribute=doc.fallback_attribute,
        seed=doc.seed,
        hash_version=doc.hash_version,
        status=doc.status,
        start=start,
        end=end,
        condition=condition,
        namespace=namespace,
        holdout=doc.holdout,
        bucket_version=doc.bucket_version,
        min_bucket_version=doc.min_bucket_version,
        sticky=doc.sticky,
        winner=winner,
        metrics=tuple(doc.metrics) if doc.metrics else DEFAULT_METRICS,
        plan=Plan(
            users=plan.users,
            mde=plan.mde,
            alpha=plan.alpha,
            power=plan.power,
            baseline=plan.baseline,
        ),
        defined_in=block_id,
    )
    return experiment, targeted_arm_warnings(experiment, page)


def claimed_treatments(document: Any, block_id: str) -> dict[str, frozenset[str]]:
    """Block id → the treatment arms a definition names, even an invalid one.

    A broken definition is ignored, but its treatment arms still stay out of
    normal selection: a typo must not show a treatment to every visitor.
    """
    out: dict[str, frozenset[str]] = {}
    if not isinstance(document, Mapping):
        return out
    variations = document.get("variations")
    if isinstance(variations, list):
        out[block_id] = frozenset(v for v in variations[1:] if isinstance(v, str))
    factors = document.get("factors")
    if isinstance(factors, Mapping):
        for factor_block, arms in factors.items():
            if isinstance(factor_block, str) and isinstance(arms, list):
                named = frozenset(v for v in arms[1:] if isinstance(v, str))
                out[factor_block] = out.get(factor_block, frozenset()) | named
    return out


def targeted_arm_warnings(experiment: Experiment, page: PageArms) -> list[SpecProblem]:
    """Warnings for arms with their own audiences or condition (ignored while enrolled)."""
    problems = []
    for factor in experiment.factors:
        for variant_id in factor.variants:
            if page[factor.block_id][variant_id].targeted:
                problems.append(
                    SpecProblem(
                        "variations" if experiment.design == "single" else "factors",
                        "experiment.targeted-arm",
                        f"variant {variant_id!r} of block {factor.block_id!r} has its own "
                        "audiences or condition, which are ignored for visitors in the "
                        "experiment",
                        "warning",
                    )
                )
    return problems


def overlapping(first: Experiment, second: Experiment) -> bool:
    """Whether two experiments may enroll the same visitor on a shared block."""
    if not set(first.block_ids) & set(second.block_ids):
        return False
    a, b = first.namespace, second.namespace
    if a is None or b is None or a[0] != b[0]:
        return True
    return a[1] < b[2] and b[1] < a[2]


def signature(experiment: Experiment) -> tuple[Any, ...]:
    """What must agree between two pages that define the same experiment key."""
    return (
        experiment.factors,
        experiment.combinations,
        experiment.weights,
        experiment.coverage,
        experiment.hash_attribute,
        experiment.fallback_attribute,
        experiment.seed,
        experiment.hash_version,
        experiment.status,
        experiment.start,
        experiment.end,
        experiment.condition.key if experiment.condition is not None else None,
        experiment.namespace,
        experiment.holdout,
        experiment.bucket_version,
        experiment.min_bucket_version,
        experiment.winner,
    )
