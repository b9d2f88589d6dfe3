"""An experiment's report from its unit rows (pure): per variation and metric, every statistic.

For each metric and each treatment against the control (variation 0):
users, conversions (or the metric's total), rate (or mean), the relative
lift with its confidence interval, the p-value (two-proportion z-test, or
Welch's t-test for means), the Bayesian chance to beat control, the
CUPED-adjusted lift when the pre-period explains some variance, and the
always-valid (sequential) p-value and confidence sequence. For the
experiment: the sample-ratio-mismatch check and, for the primary metric,
power and the minimum detectable effect of the planned sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from blocks.experiments import Plan
from experiments import stats
from experiments.metrics import MetricKind, UnitRow, metric_kind

#: Looks of the sequential test: one at the end of each UTC day, at most this many.
MAX_LOOKS = 400


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """What the analysis needs to know about an experiment."""

    key: str
    variation_keys: tuple[str, ...]
    weights: tuple[float, ...]
    metrics: tuple[str, ...]
    plan: Plan = field(default_factory=Plan)
    name: str | None = None
    status: str = "running"
    blocks: frozenset[str] = frozenset()
    #: `content` when the definition was found in the CMS, else `exposures`.
    source: str = "content"


@dataclass(frozen=True, slots=True)
class VariationRow:
    """A variation's users against its configured share (what SRM checks)."""

    index: int
    key: str
    users: int
    share: float
    expected_share: float


@dataclass(frozen=True, slots=True)
class Adjusted:
    """A lift estimated another way (CUPED, or the always-valid sequential test)."""

    lift: float | None
    low: float | None
    high: float | None
    p_value: float | None


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One variation's numbers on one metric, compared with the control."""

    variation: int
    key: str
    users: int
    total: float
    rate: float
    lift: float | None = None
    lift_low: float | None = None
    lift_high: float | None = None
    p_value: float | None = None
    test: str | None = None
    chance_to_beat_control: float | None = None
    significant: bool = False
    cuped: Adjusted | None = None
    sequential: Adjusted | None = None


@dataclass(frozen=True, slots=True)
class MetricReport:
    """A metric across variations."""

    metric: str
    kind: MetricKind
    primary: bool
    rows: tuple[MetricRow, ...]
    #: The share of variance CUPED removed (None when no pre-period covariate exists).
    variance_reduction: float | None = None


@dataclass(frozen=True, slots=True)
class PowerReport:
    """What the planned sample can detect on the primary metric."""

    metric: str
    baseline: float | None
    planned_users: int | None
    users_per_arm: float | None
    alpha: float
    target_power: float
    planned_mde: float
    mde: float | None
    power_at_planned_mde: float | None
    users_needed: float | None
    users_now: int


@dataclass(frozen=True, slots=True)
class ExposureCounts:
    """How exposures were counted."""

    daily_exposures: int
    beacon_only: int
    multiple_variations: int


@dataclass(frozen=True, slots=True)
class Report:
    """An experiment's full report."""

    key: str
    name: str | None
    status: str
    source: str
    generated_at: datetime
    alpha: float
    sequential: bool
    users: int
    first_exposure: datetime | None
    last_exposure: datetime | None
    variations: tuple[VariationRow, ...]
    srm: stats.Srm | None
    metrics: tuple[MetricReport, ...]
    power: PowerReport | None
    exposures: ExposureCounts
    warnings: tuple[str, ...] = ()


def _values(rows: Sequence[UnitRow], metric: str, until: datetime | None = None) -> np.ndarray:
    return np.fromiter((row.value(metric, until) for row in rows), dtype=float, count=len(rows))


def _compare(
    kind: MetricKind,
    control: np.ndarray,
    treatment: np.ndarray,
    alpha: float,
) -> tuple[stats.Lift, float | None, float | None]:
    """Lift with interval, p-value and chance to beat control of treatment vs control."""
    arm0, arm1 = stats.Arm.of(control), stats.Arm.of(treatment)
    lift = stats.relative_lift(arm0, arm1, alpha)
    if kind == "proportion":
        x0, x1 = int(control.sum()), int(treatment.sum())
        p = stats.two_proportion_p((x1, x0), (arm1.n, arm0.n))
        chance = (
            stats.chance_to_beat_binomial((x0, arm0.n), (x1, arm1.n)) if arm0.n and arm1.n else None
        )
        return lift, p, chance
    return lift, stats.welch_p(arm0, arm1), stats.chance_to_beat_mean(arm0, arm1)


def _looks(rows: Sequence[UnitRow], now: datetime) -> list[datetime]:
    if not rows:
        return []
    first = min(row.first for row in rows)
    day = datetime(first.year, first.month, first.day, tzinfo=first.tzinfo) + timedelta(days=1)
    looks: list[datetime] = []
    while day < now and len(looks) < MAX_LOOKS - 1:
        looks.append(day)
        day += timedelta(days=1)
    looks.append(now)
    return looks


def _sequential(
    rows: Sequence[UnitRow],
    metric: str,
    variation: int,
    tau: float,
    alpha: float,
    now: datetime,
) -> Adjusted | None:
    """The always-valid p (running minimum over daily looks) and the confidence sequence."""
    best_p = 1.0
    last: stats.Sequential | None = None
    estimate: float | None = None
    for look in _looks(rows, now):
        enrolled = [row for row in rows if row.first <= look]
        control = _values([r for r in enrolled if r.variation == 0], metric, look)
        treatment = _values([r for r in enrolled if r.variation == variation], metric, look)
        lift = stats.relative_lift(stats.Arm.of(control), stats.Arm.of(treatment), alpha)
        if lift.log_ratio is None or lift.log_se is None:
            continue
        # On the log of the ratio, back to a relative lift for people.
        last = stats.msprt(lift.log_ratio, lift.log_se, math.log1p(tau), alpha)
        estimate = lift.lift
        best_p = min(best_p, last.p)
    if last is None:
        return None
    return Adjusted(estimate, math.expm1(last.low), math.expm1(last.high), best_p)


def _metric(
    info: ExperimentInfo,
    rows: Sequence[UnitRow],
    metric: str,
    *,
    alpha: float,
    sequential: bool,
    now: datetime,
) -> MetricReport:
    kind = metric_kind(metric)
    values = _values(rows, metric)
    variations = np.fromiter((row.variation for row in rows), dtype=int, count=len(rows))
    pre = np.fromiter((row.pre(metric) for row in rows), dtype=float, count=len(rows))
    adjusted = stats.cuped(values, pre) if pre.any() else None
    control = values[variations == 0]
    out: list[MetricRow] = []
    for index, key in enumerate(info.variation_keys):
        mine = values[variations == index]
        total = float(mine.sum())
        row = MetricRow(
            variation=index,
            key=key,
            users=int(mine.size),
            total=total,
            rate=total / mine.size if mine.size else 0.0,
        )
        if index == 0:
            out.append(row)
            continue
        lift, p, chance = _compare(kind, control, mine, alpha)
        cuped = None
        if adjusted is not None:
            adj = adjusted.adjusted
            c_lift = stats.relative_lift(
                stats.Arm.of(adj[variations == 0]), stats.Arm.of(adj[variations == index]), alpha
            )
            c_p = stats.welch_p(
                stats.Arm.of(adj[variations == 0]), stats.Arm.of(adj[variations == index])
            )
            cuped = Adjusted(c_lift.lift, c_lift.low, c_lift.high, c_p)
        seq = _sequential(rows, metric, index, info.plan.mde, alpha, now) if sequential else None
        decisive = seq.p_value if seq is not None else p
        out.append(
            MetricRow(
                variation=index,
                key=key,
                users=row.users,
                total=total,
                rate=row.rate,
                lift=lift.lift,
                lift_low=lift.low,
                lift_high=lift.high,
                p_value=p,
                test="z" if kind == "proportion" else "welch",
                chance_to_beat_control=chance,
                significant=decisive is not None and decisive < alpha,
                cuped=cuped,
                sequential=seq,
            )
        )
    return MetricReport(
        metric=metric,
        kind=kind,
        primary=metric == info.metrics[0],
        rows=tuple(out),
        variance_reduction=adjusted.variance_reduction if adjusted is not None else None,
    )


def _power(
    info: ExperimentInfo,
    rows: Sequence[UnitRow],
    *,
    alpha: float,
    planned_users: int | None,
) -> PowerReport:
    metric = info.metrics[0]
    plan = info.plan
    planned = planned_users or plan.users
    weights = np.asarray(info.weights, dtype=float)
    smallest = float(weights.min() / weights.sum()) if weights.size else 0.5
    per_arm = planned * smallest if planned else None
    control = _values([row for row in rows if row.variation == 0], metric)
    baseline: float | None
    if metric_kind(metric) == "proportion":
        baseline = (
            plan.baseline
            if plan.baseline is not None
            else (float(control.mean()) if control.size else None)
        )
        power = (
            stats.proportion_power(
                baseline, per_arm or 0, alpha=alpha, power=plan.power, planned_mde=plan.mde
            )
            if baseline is not None
            else None
        )
    else:
        baseline = float(control.mean()) if control.size else None
        std = float(control.std(ddof=1)) if control.size > 1 else 0.0
        power = (
            stats.mean_power(
                baseline, std, per_arm or 0, alpha=alpha, power=plan.power, planned_mde=plan.mde
            )
            if baseline is not None
            else None
        )
    return PowerReport(
        metric=metric,
        baseline=baseline,
        planned_users=planned,
        users_per_arm=per_arm,
        alpha=alpha,
        target_power=plan.power,
        planned_mde=plan.mde,
        mde=power.mde if power is not None and per_arm else None,
        power_at_planned_mde=power.power_at_planned_effect
        if power is not None and per_arm
        else None,
        users_needed=(
            power.users_needed / smallest if power is not None and power.users_needed else None
        ),
        users_now=len(rows),
    )


def analyze(
    info: ExperimentInfo,
    rows: Sequence[UnitRow],
    *,
    now: datetime,
    exposures: ExposureCounts | None = None,
    alpha: float | None = None,
    sequential: bool = False,
    planned_users: int | None = None,
) -> Report:
    """The report of experiment `info` over its unit rows."""
    alpha = alpha if alpha is not None else info.plan.alpha
    counts = [sum(1 for row in rows if row.variation == i) for i in range(len(info.variation_keys))]
    total = sum(counts)
    weights = np.asarray(info.weights, dtype=float)
    shares = weights / weights.sum() if weights.sum() > 0 else weights
    variations = tuple(
        VariationRow(
            index=i,
            key=key,
            users=counts[i],
            share=counts[i] / total if total else 0.0,
            expected_share=float(shares[i]),
        )
        for i, key in enumerate(info.variation_keys)
    )
    srm = stats.sample_ratio_mismatch(counts, list(shares))
    warnings: list[str] = []
    if srm is not None and srm.flagged:
        warnings.append(
            f"sample ratio mismatch (chi-square {srm.chi2:.1f}, p = {srm.p:.2g} < 0.001): "
            "users are not split as configured; do not trust these results until the "
            "cause is found (see docs/experiments.md)"
        )
    if info.source != "content":
        warnings.append(
            "the definition was not found in the content: variations come from the "
            "exposure log and SRM assumes equal weights"
        )
    if exposures is not None and exposures.multiple_variations:
        warnings.append(
            f"{exposures.multiple_variations} unit(s) saw more than one variation and are left out"
        )
    metrics = tuple(
        _metric(info, rows, metric, alpha=alpha, sequential=sequential, now=now)
        for metric in info.metrics
    )
    firsts = [row.first for row in rows]
    return Report(
        key=info.key,
        name=info.name,
        status=info.status,
        source=info.source,
        generated_at=now,
        alpha=alpha,
        sequential=sequential,
        users=total,
        first_exposure=min(firsts) if firsts else None,
        last_exposure=max(firsts) if firsts else None,
        variations=variations,
        srm=srm,
        metrics=metrics,
        power=_power(info, rows, alpha=alpha, planned_users=planned_users),
        exposures=exposures or ExposureCounts(total, 0, 0),
        warnings=tuple(warnings),
    )
