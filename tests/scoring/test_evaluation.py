"""Off-policy estimates and reliability tables, checked by hand."""

from __future__ import annotations

import pytest

from scoring.evaluation import (
    LoggedChoice,
    expected_calibration_error,
    off_policy_estimate,
    reliability_table,
)


def test_ips_and_snips_by_hand() -> None:
    choices = [
        LoggedChoice(chosen="a", propensity=0.5, reward=1.0, target="a"),  # match, 1/0.5
        LoggedChoice(chosen="b", propensity=0.25, reward=1.0, target="a"),  # no match
        LoggedChoice(chosen="a", propensity=0.25, reward=0.0, target="a"),  # match, 0
        LoggedChoice(chosen="c", propensity=0.5, reward=1.0, target="c"),  # match, 1/0.5
    ]
    estimate = off_policy_estimate(choices)
    assert estimate.n == 4
    assert estimate.matches == 3
    assert estimate.logged_rate == pytest.approx(0.75)
    # IPS = (2 + 0 + 2) / 4; SNIPS = 4 / (2 + 4 + 2).
    assert estimate.ips == pytest.approx(1.0)
    assert estimate.snips == pytest.approx(0.5)


def test_no_match_has_no_snips() -> None:
    estimate = off_policy_estimate([LoggedChoice("a", 0.5, 1.0, "b")])
    assert estimate.ips == 0.0
    assert estimate.snips is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        off_policy_estimate([])
    with pytest.raises(ValueError, match="positive"):
        off_policy_estimate([LoggedChoice("a", 0.0, 1.0, "a")])


def test_reliability_table_bins_and_ece() -> None:
    table = reliability_table([0.05, 0.15, 0.12, 0.95, 1.0], [0, 1, 0, 1, 1], bins=10)
    assert len(table) == 10
    assert [b.count for b in table] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table[1].mean_predicted == pytest.approx(0.135)
    assert table[1].observed == pytest.approx(0.5)
    assert table[2].mean_predicted is None
    # |0.05-0| + 2·|0.135-0.5| + 2·|0.975-1| over 5.
    assert expected_calibration_error(table) == pytest.approx((0.05 + 0.73 + 0.05) / 5, abs=1e-4)


def test_certain_choices_are_left_out_of_the_estimate() -> None:
    choices = [
        LoggedChoice(chosen="a", propensity=0.5, reward=1.0, target="a"),
        LoggedChoice(chosen="b", propensity=0.5, reward=0.0, target="a"),
        # No exploration: the logging policy could not have shown anything else.
        LoggedChoice(chosen="a", propensity=1.0, reward=1.0, target="a"),
        LoggedChoice(chosen="a", propensity=1.0, reward=1.0, target="a"),
    ]
    estimate = off_policy_estimate(choices)
    assert (estimate.n, estimate.unexplored, estimate.matches) == (2, 2, 1)
    assert estimate.logged_rate == pytest.approx(0.5)
    assert estimate.ips == pytest.approx(1.0)  # (1/0.5) / 2


def test_without_exploration_there_is_no_estimate() -> None:
    estimate = off_policy_estimate([LoggedChoice("a", 1.0, 1.0, "a")])
    assert (estimate.n, estimate.unexplored) == (0, 1)
    assert estimate.ips is None
    assert estimate.snips is None
    assert estimate.logged_rate is None
