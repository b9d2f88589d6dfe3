"""The statistics of an A/B test, on summary numbers (pure; scipy and statsmodels do the maths).

- Relative lift `treatment / control - 1` with a confidence interval on the
  log of the ratio (delta method: `var log m = var m / m²`), so an interval
  never reaches below -100 % however small the counts.
- Two-proportion z-test for conversion-type metrics (statsmodels'
  `proportions_ztest`, pooled variance); Welch's unequal-variance t-test for
  means such as revenue per visitor (scipy's `ttest_ind_from_stats`).
- Bayesian chance to beat control: a Beta(1 + x, 1 + n - x) posterior per
  arm for proportions, a flat-prior normal posterior for means, compared
  through the normal approximation of their difference.
- Sample-ratio mismatch: Pearson's chi-square of the users per arm against
  the configured weights (scipy's `chisquare`), flagged below p = 0.001.
- CUPED: the metric adjusted by its pre-exposure value, `y - θ (x - mean x)`
  with one pooled `θ = cov(x, y) / var(x)`, which removes the variance the
  pre-period explains without biasing the difference.
- An always-valid p-value and confidence sequence (a mixture sequential
  probability ratio test, mSPRT, on the log of the ratio, with a normal
  mixing distribution of scale `tau = log(1 + planned lift)`): valid however
  often the result is looked at, at the price of wider intervals.
- Power and minimum detectable effect for a planned sample (statsmodels'
  `NormalIndPower` on Cohen's h for proportions, on Cohen's d for means).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

SRM_THRESHOLD = 0.001
#: The significance levels a report accepts: below 1e-6 statsmodels' power solver
#: no longer converges (1e-320 printed its warning past the logs).
MIN_ALPHA = 1e-6
MAX_ALPHA = 0.5


def alpha_problem(alpha: float) -> str | None:
    """Why `alpha` cannot be a report's significance level, or None."""
    if not MIN_ALPHA <= alpha < MAX_ALPHA:
        return f"alpha: must be at least {MIN_ALPHA:g} and below {MAX_ALPHA:g}"
    return None


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm's metric in summary: users, mean and (sample) variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Arm:
        """Summarise per-user values."""
        array = np.asarray(values, dtype=float)
        n = int(array.size)
        if n == 0:
            return cls(0, 0.0, 0.0)
        variance = float(array.var(ddof=1)) if n > 1 else 0.0
        return cls(n, float(array.mean()), variance)


@dataclass(frozen=True, slots=True)
class Lift:
    """A relative lift and its confidence interval (None when the control mean is 0).

    `log_ratio` and `log_se` are the estimate and standard error on the log scale
    the interval is built on (None when the treatment mean is 0: then the interval
    falls back to the delta method on the ratio, `se`).
    """

    lift: float | None
    low: float | None
    high: float | None
    se: float | None
    log_ratio: float | None = None
    log_se: float | None = None


def _z(alpha: float) -> float:
    return float(sps.norm.ppf(1 - alpha / 2))


def relative_lift(control: Arm, treatment: Arm, alpha: float = 0.05) -> Lift:
    """`treatment / control - 1` with a (1 - alpha) interval from the log of the ratio."""
    if control.n < 2 or treatment.n < 2 or control.mean <= 0 or treatment.mean < 0:
        return Lift(None, None, None, None)
    ratio = treatment.mean / control.mean
    var = treatment.variance / treatment.n / control.mean**2 + (
        treatment.mean**2 * control.variance / control.n / control.mean**4
    )
    se = math.sqrt(max(var, 0.0))
    z = _z(alpha)
    if treatment.mean == 0:
        return Lift(ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se, se)
    log_ratio = math.log(ratio)
    log_se = math.sqrt(
        max(
            treatment.variance / treatment.n / treatment.mean**2
            + control.variance / control.n / control.mean**2,
            0.0,
        )
    )
    return Lift(
        ratio - 1,
        math.exp(log_ratio - z * log_se) - 1,
        math.exp(log_ratio + z * log_se) - 1,
        se,
        log_ratio,
        log_se,
    )


def two_proportion_p(successes: tuple[int, int], users: tuple[int, int]) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test (None when undefined)."""
    if min(users) < 1:
        return None
    total = sum(successes)
    if total == 0 or total == sum(users):
        return 1.0  # no variation at all: nothing suggests a difference
    _, p = proportions_ztest(np.array(successes), np.array(users), alternative="two-sided")
    return float(p)


def welch_p(control: Arm, treatment: Arm) -> float | None:
    """The two-sided p-value of Welch's t-test on two means (None when undefined)."""
    if control.n < 2 or treatment.n < 2:
        return None
    if control.variance == 0 and treatment.variance == 0:
        return 1.0 if control.mean == treatment.mean else 0.0
    result = sps.ttest_ind_from_stats(
        treatment.mean,
        math.sqrt(treatment.variance),
        treatment.n,
        control.mean,
        math.sqrt(control.variance),
        control.n,
        equal_var=False,
    )
    return float(result.pvalue)


def chance_to_beat_binomial(control: tuple[int, int], treatment: tuple[int, int]) -> float:
    """P(treatment rate > control rate) under Beta(1 + x, 1 + n - x) posteriors."""

    def moments(successes: int, n: int) -> tuple[float, float]:
        a, b = 1 + successes, 1 + n - successes
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))

    mean0, var0 = moments(*control)
    mean1, var1 = moments(*treatment)
    return float(sps.norm.cdf((mean1 - mean0) / math.sqrt(var0 + var1)))


def chance_to_beat_mean(control: Arm, treatment: Arm) -> float | None:
    """P(treatment mean > control mean) under flat-prior normal posteriors."""
    if control.n < 2 or treatment.n < 2:
        return None
    var = control.variance / control.n + treatment.variance / treatment.n
    if var == 0:
        return 0.5 if treatment.mean == control.mean else float(treatment.mean > control.mean)
    return float(sps.norm.cdf((treatment.mean - control.mean) / math.sqrt(var)))


@dataclass(frozen=True, slots=True)
class Srm:
    """The sample-ratio-mismatch check."""

    chi2: float
    p: float
    flagged: bool


def sample_ratio_mismatch(observed: Sequence[int], weights: Sequence[float]) -> Srm | None:
    """Pearson's chi-square of users per arm against the weights; flagged at p < 0.001."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return None
    share = np.asarray(weights, dtype=float)
    share = share / share.sum()
    expected = share * total
    chi2, p = sps.chisquare(np.asarray(observed, dtype=float), expected)
    return Srm(float(chi2), float(p), bool(p < SRM_THRESHOLD))


@dataclass(frozen=True, slots=True)
class Cuped:
    """CUPED-adjusted per-user values and how much variance the pre-period removed."""

    adjusted: np.ndarray
    theta: float
    variance_reduction: float


def cuped(values: Sequence[float] | np.ndarray, pre: Sequence[float] | np.ndarray) -> Cuped | None:
    """Adjust `values` by their pre-exposure covariate `pre` (None without a usable covariate)."""
    y = np.asarray(values, dtype=float)
    x = np.asarray(pre, dtype=float)
    if y.size < 3 or x.size != y.size:
        return None
    var_x = float(x.var(ddof=1))
    if var_x == 0:
        return None
    theta = float(np.cov(x, y, ddof=1)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    var_y = float(y.var(ddof=1))
    reduction = 1 - float(adjusted.var(ddof=1)) / var_y if var_y > 0 else 0.0
    return Cuped(adjusted, theta, reduction)


@dataclass(frozen=True, slots=True)
class Sequential:
    """An always-valid p-value and the (1 - alpha) confidence sequence of the relative lift."""

    p: float
    low: float
    high: float


def msprt(estimate: float, se: float, tau: float, alpha: float = 0.05) -> Sequential:
    """The mSPRT of `estimate` (standard error `se`) with a N(0, tau²) mixture.

    `p = min(1, 1 / Λ)` with `Λ = sqrt(V / (V + τ²)) exp(τ² θ² / (2 V (V + τ²)))`,
    and the confidence sequence `θ ± sqrt(V (V + τ²) / τ² · (log((V + τ²) / V) - 2 log alpha))`.
    """
    v, t2 = se**2, tau**2
    if v <= 0:
        return Sequential(0.0 if estimate != 0 else 1.0, estimate, estimate)
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * estimate**2 / (2 * v * (v + t2))
    p = 1.0 if log_lambda <= 0 else min(1.0, math.exp(-log_lambda))
    half = math.sqrt(v * (v + t2) / t2 * (math.log((v + t2) / v) - 2 * math.log(alpha)))
    return Sequential(p, estimate - half, estimate + half)


@dataclass(frozen=True, slots=True)
class Power:
    """What a planned sample can detect."""

    users_per_arm: float
    mde: float | None
    power_at_planned_effect: float | None
    users_needed: float | None


def _solve(nobs1: float | None, effect: float | None, alpha: float, power: float | None) -> float:
    value = NormalIndPower().solve_power(
        effect_size=effect, nobs1=nobs1, alpha=alpha, power=power, ratio=1.0
    )
    return float(np.asarray(value).item())


def proportion_power(
    baseline: float, users_per_arm: float, *, alpha: float, power: float, planned_mde: float
) -> Power:
    """Relative MDE at `users_per_arm`, power for `planned_mde`, and the users it needs."""
    if not 0 < baseline < 1 or users_per_arm < 2:
        return Power(users_per_arm, None, None, None)
    h = _solve(users_per_arm, None, alpha, power)
    # Invert Cohen's h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1)) for p2.
    angle = math.asin(math.sqrt(baseline)) + h / 2
    mde = None if angle >= math.pi / 2 else math.sin(angle) ** 2 / baseline - 1
    target = baseline * (1 + planned_mde)
    if not 0 < target < 1:
        return Power(users_per_arm, mde, None, None)
    effect = abs(float(proportion_effectsize(target, baseline)))
    achieved = _solve(users_per_arm, effect, alpha, None)
    needed = _solve(None, effect, alpha, power)
    return Power(users_per_arm, mde, achieved, needed)


def mean_power(
    mean: float,
    std: float,
    users_per_arm: float,
    *,
    alpha: float,
    power: float,
    planned_mde: float,
) -> Power:
    """The same for a mean metric (Cohen's d with the control's standard deviation)."""
    if mean == 0 or std <= 0 or users_per_arm < 2:
        return Power(users_per_arm, None, None, None)
    d = _solve(users_per_arm, None, alpha, power)
    effect = abs(planned_mde * mean / std)
    achieved = _solve(users_per_arm, effect, alpha, None)
    needed = _solve(None, effect, alpha, power)
    return Power(users_per_arm, d * std / abs(mean), achieved, needed)
