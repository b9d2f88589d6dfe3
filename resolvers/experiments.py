"""Admin GraphQL `experimentReport(key)`: what `gateway experiments report` prints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import strawberry

from blocks.experiment_spec import KEY_PATTERN
from cms_adapters.errors import CMSError
from delivery.errors import BadUserInput, ContentUnavailable, PublicError
from experiments import analysis
from experiments.data import experiment_report
from experiments.errors import ExperimentNotFound
from experiments.report import chart_html
from experiments.stats import alpha_problem
from resolvers.permissions import IsAdmin
from resolvers.query import TesseraInfo


class ExperimentNotFoundError(PublicError):
    """Neither the content nor the exposure log knows the experiment."""

    code = "EXPERIMENT_NOT_FOUND"


@strawberry.type(description="A variation's users against its configured share.")
class ExperimentVariation:
    index: int
    key: str
    users: int
    share: float
    expected_share: float


@strawberry.type(description="Sample-ratio mismatch: Pearson's chi-square of users per arm.")
class SampleRatioMismatch:
    chi2: float
    p: float
    flagged: bool = strawberry.field(description="p < 0.001: do not trust the results yet.")


@strawberry.type(description="A lift estimated another way: CUPED, or the sequential test.")
class AdjustedLift:
    lift: float | None
    low: float | None
    high: float | None
    p_value: float | None


@strawberry.type(description="One variation on one metric, compared with the control.")
class ExperimentMetricRow:
    variation: int
    key: str
    users: int
    total: float = strawberry.field(description="Conversions, or the metric's sum.")
    rate: float = strawberry.field(description="Conversion rate, or the mean per user.")
    lift: float | None = strawberry.field(description="Relative lift over the control.")
    lift_low: float | None
    lift_high: float | None
    p_value: float | None
    test: str | None = strawberry.field(description="`z` (two proportions) or `welch`.")
    chance_to_beat_control: float | None
    significant: bool
    cuped: AdjustedLift | None
    sequential: AdjustedLift | None = strawberry.field(
        description="Always-valid p-value and confidence sequence (with `sequential: true`)."
    )


@strawberry.type(description="A metric across variations.")
class ExperimentMetric:
    metric: str
    kind: str = strawberry.field(description="`proportion` or `mean`.")
    primary: bool
    variance_reduction: float | None = strawberry.field(
        description="The share of variance CUPED removed (null without a pre-period covariate)."
    )
    rows: list[ExperimentMetricRow]


@strawberry.type(description="What the planned sample can detect on the primary metric.")
class ExperimentPower:
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


@strawberry.type(description="How exposures were counted (one per user, experiment and day).")
class ExperimentExposures:
    daily_exposures: int
    beacon_only: int = strawberry.field(description="Days known only from `block_view` beacons.")
    multiple_variations: int = strawberry.field(description="Users left out: saw two variations.")


@strawberry.type(description="An experiment's results (admin key).")
class ExperimentReport:
    key: str
    name: str | None
    status: str
    source: str = strawberry.field(description="`content`, or `exposures` if not in the CMS.")
    generated_at: datetime
    alpha: float
    sequential: bool
    users: int
    first_exposure: datetime | None
    last_exposure: datetime | None
    variations: list[ExperimentVariation]
    srm: SampleRatioMismatch | None
    metrics: list[ExperimentMetric]
    power: ExperimentPower | None
    exposures: ExperimentExposures
    warnings: list[str]
    chart_html: str = strawberry.field(
        description="A self-contained HTML page charting the lifts and the split."
    )


def _adjusted(value: analysis.Adjusted | None) -> AdjustedLift | None:
    if value is None:
        return None
    return AdjustedLift(lift=value.lift, low=value.low, high=value.high, p_value=value.p_value)


def _row(row: analysis.MetricRow) -> ExperimentMetricRow:
    return ExperimentMetricRow(
        variation=row.variation,
        key=row.key,
        users=row.users,
        total=row.total,
        rate=row.rate,
        lift=row.lift,
        lift_low=row.lift_low,
        lift_high=row.lift_high,
        p_value=row.p_value,
        test=row.test,
        chance_to_beat_control=row.chance_to_beat_control,
        significant=row.significant,
        cuped=_adjusted(row.cuped),
        sequential=_adjusted(row.sequential),
    )


def to_graphql(report: analysis.Report) -> ExperimentReport:
    """The analysis report as its GraphQL type."""
    power = report.power
    return ExperimentReport(
        key=report.key,
        name=report.name,
        status=report.status,
        source=report.source,
        generated_at=report.generated_at,
        alpha=report.alpha,
        sequential=report.sequential,
        users=report.users,
        first_exposure=report.first_exposure,
        last_exposure=report.last_exposure,
        variations=[
            ExperimentVariation(
                index=v.index,
                key=v.key,
                users=v.users,
                share=v.share,
                expected_share=v.expected_share,
            )
            for v in report.variations
        ],
        srm=(
            SampleRatioMismatch(chi2=report.srm.chi2, p=report.srm.p, flagged=report.srm.flagged)
            if report.srm is not None
            else None
        ),
        metrics=[
            ExperimentMetric(
                metric=m.metric,
                kind=m.kind,
                primary=m.primary,
                variance_reduction=m.variance_reduction,
                rows=[_row(r) for r in m.rows],
            )
            for m in report.metrics
        ],
        power=(
            ExperimentPower(
                metric=power.metric,
                baseline=power.baseline,
                planned_users=power.planned_users,
                users_per_arm=power.users_per_arm,
                alpha=power.alpha,
                target_power=power.target_power,
                planned_mde=power.planned_mde,
                mde=power.mde,
                power_at_planned_mde=power.power_at_planned_mde,
                users_needed=power.users_needed,
                users_now=power.users_now,
            )
            if power is not None
            else None
        ),
        exposures=ExperimentExposures(
            daily_exposures=report.exposures.daily_exposures,
            beacon_only=report.exposures.beacon_only,
            multiple_variations=report.exposures.multiple_variations,
        ),
        warnings=list(report.warnings),
        chart_html=chart_html(report),
    )


@strawberry.type
class ExperimentQuery:
    @strawberry.field(
        description="An experiment's results: per variation and metric, lift with its 95% "
        "interval, p-value, chance to beat control, CUPED, SRM and power (admin key).",
        permission_classes=[IsAdmin],
    )
    async def experiment_report(
        self,
        info: TesseraInfo,
        key: str,
        sequential: Annotated[
            bool, strawberry.argument(description="Judge by always-valid p-values.")
        ] = False,
        alpha: Annotated[
            float | None, strawberry.argument(description="Default: the plan's alpha.")
        ] = None,
        planned_users: Annotated[
            int | None, strawberry.argument(description="Default: the plan's users.")
        ] = None,
    ) -> ExperimentReport:
        """Read the experiment's exposures and events, and analyse them."""
        if not re.fullmatch(KEY_PATTERN, key):
            raise BadUserInput(
                f"key: {key[:80]!r} is not an experiment key (1-64 letters, digits, '_' or '-')."
            )
        problem = alpha_problem(alpha) if alpha is not None else None
        if problem is not None:
            raise BadUserInput(f"{problem}.")
        if planned_users is not None and not 2 <= planned_users <= 10**12:
            raise BadUserInput("plannedUsers: must be between 2 and 10^12.")
        services = info.context.services
        try:
            report = await experiment_report(
                services.store.collection.database,
                services.content.adapter,
                key,
                now=services.clock(),
                alpha=alpha,
                sequential=sequential,
                planned_users=planned_users,
            )
        except ExperimentNotFound as exc:
            raise ExperimentNotFoundError(str(exc)) from None
        except CMSError as exc:
            raise ContentUnavailable(f"The content cannot be read: {exc}") from None
        return to_graphql(report)
