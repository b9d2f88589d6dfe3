"""The statistics against hand computations, scipy on raw data and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from experiments import stats


def test_relative_lift_and_its_log_ratio_interval() -> None:
    control = stats.Arm(n=1000, mean=0.10, variance=0.09)
    treatment = stats.Arm(n=1000, mean=0.12, variance=0.1056)
    lift = stats.relative_lift(control, treatment)
    assert lift.lift == pytest.approx(0.2)
    se = math.sqrt(0.1056 / 1000 / 0.01 + 0.12**2 * 0.09 / 1000 / 0.10**4)
    assert lift.se == pytest.approx(se)
    log_se = math.sqrt(0.1056 / 1000 / 0.12**2 + 0.09 / 1000 / 0.10**2)
    assert lift.log_se == pytest.approx(log_se)
    assert lift.low == pytest.approx(1.2 * math.exp(-1.959964 * log_se) - 1, abs=1e-6)
    assert lift.high == pytest.approx(1.2 * math.exp(1.959964 * log_se) - 1, abs=1e-6)


def test_a_lift_interval_never_reaches_below_minus_100_percent() -> None:
    # Three conversions against ten: the delta method on the ratio went below -100 %.
    control = stats.Arm.of([1.0] * 3 + [0.0] * 194)
    treatment = stats.Arm.of([1.0] * 10 + [0.0] * 188)
    lift = stats.relative_lift(control, treatment)
    assert lift.low is not None
    assert lift.low > -1
    assert lift.se is not None
    assert lift.lift is not None
    assert lift.lift - 1.96 * lift.se < -1


def test_no_lift_without_a_control_mean() -> None:
    assert stats.relative_lift(stats.Arm(10, 0.0, 0.0), stats.Arm(10, 0.1, 0.01)).lift is None


def test_two_proportion_z_test_matches_the_formula() -> None:
    x, n = (120, 100), (1000, 1000)
    pooled = sum(x) / sum(n)
    z = (0.12 - 0.10) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    assert stats.two_proportion_p(x, n) == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert stats.two_proportion_p((0, 0), (10, 10)) == 1.0
    assert stats.two_proportion_p((1, 1), (0, 10)) is None


def test_welch_matches_scipy_on_the_raw_values() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(10, 300), rng.exponential(12, 250)
    expected = sps.ttest_ind(b, a, equal_var=False).pvalue
    assert stats.welch_p(stats.Arm.of(a), stats.Arm.of(b)) == pytest.approx(expected)


def test_chance_to_beat_control_agrees_with_sampling_the_posteriors() -> None:
    rng = np.random.default_rng(2)
    control, treatment = (100, 1000), (125, 1000)
    draws0 = rng.beta(1 + 100, 1 + 900, 200_000)
    draws1 = rng.beta(1 + 125, 1 + 875, 200_000)
    sampled = float((draws1 > draws0).mean())
    assert stats.chance_to_beat_binomial(control, treatment) == pytest.approx(sampled, abs=0.01)
    assert stats.chance_to_beat_binomial((50, 500), (50, 500)) == pytest.approx(0.5)


def test_sample_ratio_mismatch_flags_52_48_at_10000() -> None:
    flagged = stats.sample_ratio_mismatch([5200, 4800], [0.5, 0.5])
    assert flagged is not None
    assert flagged.chi2 == pytest.approx(16.0)
    assert flagged.p < 0.001
    assert flagged.flagged
    fine = stats.sample_ratio_mismatch([5030, 4970], [0.5, 0.5])
    assert fine is not None
    assert not fine.flagged
    weighted = stats.sample_ratio_mismatch([8000, 2000], [0.8, 0.2])
    assert weighted is not None
    assert weighted.chi2 == pytest.approx(0.0)


def test_cuped_removes_the_variance_the_pre_period_explains() -> None:
    rng = np.random.default_rng(3)
    pre = rng.normal(10, 3, 5000)
    values = pre + rng.normal(0, 1, 5000)
    result = stats.cuped(values, pre)
    assert result is not None
    assert result.theta == pytest.approx(1.0, abs=0.05)
    assert result.variance_reduction > 0.85
    # The mean is unchanged: the adjustment is centred.
    assert result.adjusted.mean() == pytest.approx(values.mean())
    assert stats.cuped(values, np.zeros(5000)) is None


def test_the_sequential_test_is_more_cautious_than_the_fixed_horizon_one() -> None:
    lift, se = 0.08, 0.03
    fixed = 2 * sps.norm.sf(lift / se)
    seq = stats.msprt(lift, se, tau=0.1)
    assert seq.p > fixed
    assert seq.low < lift - 1.96 * se
    assert seq.high > lift + 1.96 * se
    assert stats.msprt(0.0, se, tau=0.1).p == 1.0
    assert stats.msprt(0.5, 0.05, tau=0.1).p < 1e-6


def test_the_sequential_test_keeps_its_error_rate_under_continuous_peeking() -> None:
    # 400 A/A experiments, each looked at after every 100 users: the fixed-horizon
    # test "finds" an effect far more often than alpha; the always-valid one does not.
    rng = np.random.default_rng(4)
    fixed_hits = seq_hits = 0
    for _ in range(400):
        a = rng.random(5000) < 0.2
        b = rng.random(5000) < 0.2
        fixed_any = seq_any = False
        for n in range(100, 5001, 100):
            lift = stats.relative_lift(stats.Arm.of(a[:n]), stats.Arm.of(b[:n]))
            assert lift.log_ratio is not None
            assert lift.log_se is not None
            fixed_any |= abs(lift.log_ratio / lift.log_se) > 1.96
            seq_any |= stats.msprt(lift.log_ratio, lift.log_se, tau=math.log1p(0.1)).p < 0.05
        fixed_hits += fixed_any
        seq_hits += seq_any
    assert fixed_hits / 400 > 0.15
    assert seq_hits / 400 <= 0.05


def test_planned_power_for_a_10_percent_lift_on_5_percent() -> None:
    planned = stats.proportion_power(0.05, 31218, alpha=0.05, power=0.8, planned_mde=0.10)
    assert planned.power_at_planned_effect == pytest.approx(0.8, abs=0.005)
    assert planned.mde == pytest.approx(0.10, abs=0.002)
    assert planned.users_needed == pytest.approx(31217, rel=0.001)
    smaller = stats.proportion_power(0.05, 5000, alpha=0.05, power=0.8, planned_mde=0.10)
    assert smaller.mde is not None
    assert smaller.mde > 0.2
    assert smaller.power_at_planned_effect is not None
    assert smaller.power_at_planned_effect < 0.3


def test_power_of_a_mean_metric() -> None:
    result = stats.mean_power(10.0, 20.0, 10_000, alpha=0.05, power=0.8, planned_mde=0.1)
    assert result.mde is not None
    assert 0.05 < result.mde < 0.1
    assert result.power_at_planned_effect is not None
    assert result.power_at_planned_effect > 0.8
