"""Model evaluation as pure functions: calibration tables and off-policy estimates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LoggedChoice:
    """One logged decision: what was shown, with what probability, and the reward."""

    chosen: str
    propensity: float
    reward: float
    #: What the evaluated policy would have shown in the same situation.
    target: str


@dataclass(frozen=True, slots=True)
class OffPolicyEstimate:
    """Inverse propensity scoring of a deterministic target policy on logged data.

    `n` counts the choices the estimate uses: those the logging policy made at
    random (propensity below 1). `unexplored` counts the certain ones left out.
    """

    n: int
    matches: int
    logged_rate: float | None
    ips: float | None
    snips: float | None
    unexplored: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored in the registry."""
        return asdict(self)


def off_policy_estimate(choices: Sequence[LoggedChoice]) -> OffPolicyEstimate:
    """IPS and self-normalized IPS of the target policy against the logged policy's mean reward.

    IPS = (1/n) Σ 1[target = chosen] · r / p; SNIPS divides the same sum by
    Σ 1[target = chosen] / p instead of n, trading a little bias for much less
    variance. Both are unbiased only when every propensity is the probability
    the logging policy really gave the chosen variant, and when that policy
    could have chosen what the target chooses: a certain choice (propensity 1,
    as without exploration or after a scoring fallback) gave the other
    variants no chance, so it is left out, and with none left there is no
    estimate (None).
    """
    if not choices:
        raise ValueError("off-policy estimation needs at least one logged choice")
    if any(choice.propensity <= 0 for choice in choices):
        raise ValueError("a logged propensity must be positive")
    explored = [choice for choice in choices if choice.propensity < 1.0]
    weighted, weights, matches = 0.0, 0.0, 0
    for choice in explored:
        if choice.target == choice.chosen:
            matches += 1
            weights += 1.0 / choice.propensity
            weighted += choice.reward / choice.propensity
    n = len(explored)
    return OffPolicyEstimate(
        n=n,
        matches=matches,
        logged_rate=sum(c.reward for c in explored) / n if n else None,
        ips=weighted / n if n else None,
        snips=weighted / weights if weights else None,
        unexplored=len(choices) - n,
    )


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of a reliability table."""

    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed: float | None


def reliability_table(
    predicted: Sequence[float], observed: Sequence[int], *, bins: int = 10
) -> list[ReliabilityBin]:
    """Mean predicted probability vs. observed rate in `bins` equal-width bins."""
    totals = [[0, 0.0, 0] for _ in range(bins)]
    for p, y in zip(predicted, observed, strict=True):
        index = min(int(p * bins), bins - 1)
        totals[index][0] += 1
        totals[index][1] += p
        totals[index][2] += y
    return [
        ReliabilityBin(
            low=round(i / bins, 4),
            high=round((i + 1) / bins, 4),
            count=int(count),
            mean_predicted=round(total / count, 4) if count else None,
            observed=round(positives / count, 4) if count else None,
        )
        for i, (count, total, positives) in enumerate(totals)
    ]


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float:
    """Count-weighted mean |predicted - observed| over the non-empty bins."""
    total = sum(b.count for b in table)
    if not total:
        return 0.0
    gap = sum(
        b.count * abs((b.mean_predicted or 0.0) - (b.observed or 0.0)) for b in table if b.count
    )
    return round(gap / total, 4)
