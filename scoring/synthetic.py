"""Synthetic exposure logs with a known ground truth, for tests and the simulator.

Visitors belong to one of a few audiences; each audience clicks each variant
with a fixed probability. Exposures are logged as the gateway logs them, one
page document per page view (here a page of one block; uniform random choice,
so the propensity is 1/k), and clicks are sampled from the ground truth and
stored as `click` events naming the block and variant.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scoring.features import Snapshot

#: Click probability per audience (rows) and variant (columns): clear, not extreme.
GROUND_TRUTH: dict[str, dict[str, float]] = {
    "hikers": {"trail": 0.12, "summit": 0.05, "camp": 0.04},
    "climbers": {"trail": 0.04, "summit": 0.11, "camp": 0.05},
    "campers": {"trail": 0.05, "summit": 0.04, "camp": 0.10},
}
BLOCK_ID = "sim-hero"
PAGE = "sim"


@dataclass(frozen=True, slots=True)
class SyntheticVisitor:
    """A visitor with a known audience and the snapshot the gateway would log."""

    visitor_id: str
    audience: str
    snapshot: Snapshot


def make_visitors(
    count: int, *, seed: int = 0, audiences: Sequence[str] = ()
) -> list[SyntheticVisitor]:
    """`count` visitors spread evenly over the ground truth's audiences."""
    rng = random.Random(seed)
    names = list(audiences or GROUND_TRUTH)
    visitors = []
    for index in range(count):
        audience = names[index % len(names)]
        snapshot: Snapshot = {
            "device": rng.choice(["desktop", "mobile", "tablet"]),
            "country": rng.choice(["US", "DE", "FR", "GB"]),
            "known": "yes",
            "daypart": rng.choice(["morning", "afternoon", "evening"]),
            "weekend": "no",
            "audiences": [audience],
            "traits.pageViews": round(rng.uniform(0.5, 4.0), 4),
        }
        visitors.append(SyntheticVisitor(f"sim-{index:05d}", audience, snapshot))
    return visitors


def synthetic_logs(
    visitors: Sequence[SyntheticVisitor],
    exposures: int,
    *,
    start: datetime,
    seed: int = 0,
    truth: Mapping[str, Mapping[str, float]] = GROUND_TRUTH,
    spacing: timedelta = timedelta(seconds=5),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`exposures` page views of one block under a uniform random policy, and their clicks."""
    rng = random.Random(seed)
    variants = list(next(iter(truth.values())))
    logged: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for index in range(exposures):
        visitor = rng.choice(visitors)
        chosen = rng.choice(variants)
        moment = start + spacing * index
        logged.append(
            {
                "_id": uuid.uuid4().hex,
                "visitorId": visitor.visitor_id,
                "page": PAGE,
                "locale": "en-US",
                "ts": moment,
                "personalized": True,
                "modelVersion": None,
                "features": dict(visitor.snapshot),
                "blocks": [
                    {
                        "blockId": BLOCK_ID,
                        "variantId": chosen,
                        "reason": "explore",
                        "ruleId": None,
                        "score": None,
                        "propensity": 1.0 / len(variants),
                        "modelVersion": None,
                        "candidates": [
                            {"variantId": v, "tags": [], "score": None} for v in variants
                        ],
                    }
                ],
            }
        )
        if rng.random() < truth[visitor.audience][chosen]:
            events.append(click_event(visitor.visitor_id, chosen, moment + timedelta(seconds=2)))
    return logged, events


def click_event(visitor_id: str, variant_id: str, moment: datetime) -> dict[str, Any]:
    """A stored `click` event document on the synthetic block."""
    return {
        "_id": uuid.uuid4().hex,
        "type": "click",
        "visitorId": visitor_id,
        "timestamp": moment,
        "receivedAt": moment,
        "context": {"page": f"/{PAGE}"},
        "properties": {},
        "blockId": BLOCK_ID,
        "variantId": variant_id,
    }


def policy_value(
    choose: Callable[[SyntheticVisitor], str],
    visitors: Sequence[SyntheticVisitor],
    truth: Mapping[str, Mapping[str, float]] = GROUND_TRUTH,
) -> float:
    """The expected click rate of a policy over `visitors`, from the ground truth."""
    return sum(truth[v.audience][choose(v)] for v in visitors) / len(visitors)


def random_value(truth: Mapping[str, Mapping[str, float]] = GROUND_TRUTH) -> float:
    """The expected click rate of the uniform random policy (audiences equally common)."""
    rates = [rate for row in truth.values() for rate in row.values()]
    return sum(rates) / len(rates)


def oracle_value(truth: Mapping[str, Mapping[str, float]] = GROUND_TRUTH) -> float:
    """The expected click rate of always showing each audience its best variant."""
    return sum(max(row.values()) for row in truth.values()) / len(truth)
