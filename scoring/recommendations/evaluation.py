"""Offline evaluation of the recommendation models, split by time.

The touches (`interactions`) before the split moment (by default the one
that leaves the last 20 % of touches after it) train every model; each
visitor who touched something before it and *new* products after it is a
test case: the models recommend 10 products, leaving out what the visitor
touched before (what they already know), and the products they went on to
touch are the relevant ones. Visitors with no history before the split are
left out (every model would answer them with popularity) and counted.

Per model, averaged over the test visitors:

- precision@10: relevant products among the 10, divided by 10;
- recall@10: relevant products among the 10, divided by how many there were;
- NDCG@10: the discounted gain of the hits (1 / log2(rank + 1)) over the best
  possible for that visitor;
- coverage: the share of the catalogue recommended to at least one visitor;
- novelty: the mean self-information of a recommended product, -log2 of the
  share of training visitors who touched it (unknown ones count as one):
  recommending only bestsellers scores low.

The hybrid's blend weights are chosen on a second split, inside the
training touches, so the test touches never influence them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from blocks.catalog import Catalog
from scoring.errors import NotEnoughData
from scoring.recommendations.interactions import Interaction
from scoring.recommendations.models import (
    BLENDS,
    DEFAULT_PARAMS,
    HYBRID,
    MODELS,
    Blend,
    Params,
    RecommendationModel,
    blended,
    fit,
    top_k,
)

K = 10
#: The fewest test visitors worth a report.
MIN_TEST_VISITORS = 5


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """One model's figures over the test visitors."""

    precision: float
    recall: float
    ndcg: float
    coverage: float
    novelty: float
    #: Each test visitor's NDCG@10 (same order for every model), for paired comparisons.
    per_visitor_ndcg: tuple[float, ...] = field(repr=False, default=())

    def as_json(self) -> dict[str, float]:
        """The figures under the names `--format json` prints."""
        return {
            f"precision@{K}": round(self.precision, 6),
            f"recall@{K}": round(self.recall, 6),
            f"ndcg@{K}": round(self.ndcg, 6),
            "coverage": round(self.coverage, 6),
            "novelty": round(self.novelty, 6),
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Every model's figures and what they were measured on."""

    models: Mapping[str, ModelMetrics]
    split_at: datetime
    train_touches: int
    test_touches: int
    test_visitors: int
    cold_visitors: int
    catalog_size: int
    blend: Blend

    def as_json(self) -> dict[str, Any]:
        """`{"models": {name: {"precision@10": ..., ...}}}`."""
        return {"models": {name: metrics.as_json() for name, metrics in self.models.items()}}

    def lift(self, model: str = HYBRID, baseline: str = "popularity") -> float:
        """`model`'s NDCG@10 relative to `baseline`'s (0.2 = 20 % better)."""
        base = self.models[baseline].ndcg
        return self.models[model].ndcg / base - 1.0 if base > 0 else math.inf

    def paired_difference(
        self, model: str = HYBRID, baseline: str = "popularity"
    ) -> tuple[float, float]:
        """The mean per-visitor NDCG@10 difference and its standard error."""
        a = np.asarray(self.models[model].per_visitor_ndcg)
        b = np.asarray(self.models[baseline].per_visitor_ndcg)
        diff = a - b
        if diff.size < 2:
            return float(diff.mean()) if diff.size else 0.0, math.inf
        return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))

    def format(self) -> str:
        """A table for people."""
        lines = [
            f"split at {self.split_at:%Y-%m-%d %H:%M} UTC: {self.train_touches} touches train, "
            f"{self.test_touches} test; {self.test_visitors} test visitors "
            f"({self.cold_visitors} without history left out); catalogue {self.catalog_size}",
            f"hybrid blend: cf {self.blend.cf}, content {self.blend.content}, "
            f"popularity {self.blend.popularity}",
            f"{'model':12} {'precision@10':>13} {'recall@10':>10} {'ndcg@10':>8} "
            f"{'coverage':>9} {'novelty':>8}",
        ]
        for name, m in self.models.items():
            lines.append(
                f"{name:12} {m.precision:13.4f} {m.recall:10.4f} {m.ndcg:8.4f} "
                f"{m.coverage:9.4f} {m.novelty:8.3f}"
            )
        if "popularity" in self.models and HYBRID in self.models:
            mean, error = self.paired_difference()
            lines.append(
                f"hybrid vs popularity: NDCG@10 {self.lift():+.1%} "
                f"(paired difference {mean:+.4f} ± {1.96 * error:.4f}, 95 %)"
            )
        return "\n".join(lines)


def time_split(
    touches: Sequence[Interaction], test_fraction: float
) -> tuple[list[Interaction], list[Interaction], datetime]:
    """Touches before and from the moment that leaves `test_fraction` of them after it."""
    if not touches:
        raise NotEnoughData("no product interactions to split")
    ordered = sorted(touches, key=lambda t: t.at)
    position = min(len(ordered) - 1, max(1, int(len(ordered) * (1.0 - test_fraction))))
    moment = ordered[position].at
    train = [t for t in ordered if t.at < moment]
    test = [t for t in ordered if t.at >= moment]
    return train, test, moment


@dataclass(slots=True)
class _Case:
    history: dict[int, float]
    known: set[str]
    relevant: set[str]


def _cases(
    model: RecommendationModel,
    train: Sequence[Interaction],
    test: Sequence[Interaction],
    now: datetime,
) -> tuple[list[_Case], int]:
    before: dict[str, list[Interaction]] = defaultdict(list)
    for touch in train:
        before[touch.visitor].append(touch)
    after: dict[str, set[str]] = defaultdict(set)
    for touch in test:
        if touch.item in model.index:
            after[touch.visitor].add(touch.item)
    cases: list[_Case] = []
    cold = 0
    for visitor in sorted(after):
        known = {t.item for t in before.get(visitor, ())}
        relevant = after[visitor] - known
        if not relevant:
            continue
        history = model.history(((t.item, t.weight, t.at) for t in before.get(visitor, ())), now)
        if not history:
            cold += 1
            continue
        cases.append(_Case(history, known, relevant))
    return cases, cold


def _ndcg(ranked: Sequence[str], relevant: set[str]) -> float:
    gain = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), K)))
    return gain / ideal if ideal else 0.0


def _exclude(scores: np.ndarray[Any, Any], model: RecommendationModel, known: set[str]) -> None:
    for item in known:
        position = model.index.get(item)
        if position is not None:
            scores[position] = -np.inf


def _metrics(
    lists: Sequence[list[str]],
    cases: Sequence[_Case],
    catalog_size: int,
    self_information: Mapping[str, float],
    unknown_information: float,
) -> ModelMetrics:
    precision = recall = 0.0
    ndcgs: list[float] = []
    shown: set[str] = set()
    novelty_sum = 0.0
    novelty_count = 0
    for ranked, case in zip(lists, cases, strict=True):
        hits = sum(1 for item in ranked if item in case.relevant)
        precision += hits / K
        recall += hits / len(case.relevant)
        ndcgs.append(_ndcg(ranked, case.relevant))
        shown.update(ranked)
        for item in ranked:
            novelty_sum += self_information.get(item, unknown_information)
            novelty_count += 1
    n = max(1, len(cases))
    return ModelMetrics(
        precision=precision / n,
        recall=recall / n,
        ndcg=sum(ndcgs) / n,
        coverage=len(shown) / catalog_size if catalog_size else 0.0,
        novelty=novelty_sum / novelty_count if novelty_count else 0.0,
        per_visitor_ndcg=tuple(ndcgs),
    )


def _ranked(model: RecommendationModel, case: _Case, name: str, blend: Blend) -> list[str]:
    scores = model.scores(case.history, name, blend)
    _exclude(scores, model, case.known)
    return [model.items[i] for i in top_k(scores, K)]


def choose_blend(
    train: Sequence[Interaction], catalog: Catalog, *, params: Params, test_fraction: float = 0.2
) -> Blend:
    """The blend with the best NDCG@10 on a time split of `train` (the default if none)."""
    try:
        inner_train, inner_test, moment = time_split(train, test_fraction)
    except NotEnoughData:
        return Blend()
    model = fit(inner_train, catalog, now=moment, params=params)
    cases, _ = _cases(model, inner_train, inner_test, moment)
    if len(cases) < MIN_TEST_VISITORS:
        return Blend()
    totals = np.zeros(len(BLENDS))
    for case in cases:
        parts = model.components(case.history)
        for position, blend in enumerate(BLENDS):
            scores = blended(parts, blend)
            _exclude(scores, model, case.known)
            ranked = [model.items[i] for i in top_k(scores, K)]
            totals[position] += _ndcg(ranked, case.relevant)
    # Ties go to the earlier blend: the grid lists the richer blends first.
    return BLENDS[int(np.argmax(totals))]


def evaluate(
    touches: Sequence[Interaction],
    catalog: Catalog,
    *,
    test_fraction: float = 0.2,
    params: Params = DEFAULT_PARAMS,
    min_visitors: int = MIN_TEST_VISITORS,
) -> Evaluation:
    """Every model (and the popularity baseline) on a time split of `touches`."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    known = [t for t in touches if t.item in catalog]
    train, test, moment = time_split(known, test_fraction)
    blend = choose_blend(train, catalog, params=params, test_fraction=test_fraction)
    model = fit(train, catalog, now=moment, params=params, blend=blend)
    cases, cold = _cases(model, train, test, moment)
    if len(cases) < min_visitors:
        raise NotEnoughData(
            f"{len(cases)} visitors touched new products after the split "
            f"({moment:%Y-%m-%d %H:%M}); at least {min_visitors} are needed"
        )
    visitors: dict[str, set[str]] = defaultdict(set)
    for touch in train:
        visitors[touch.item].add(touch.visitor)
    population = len({t.visitor for t in train}) or 1
    information = {item: -math.log2(len(who) / population) for item, who in visitors.items()}
    unknown = -math.log2(1.0 / population) if population > 1 else 0.0
    results = {
        name: _metrics(
            [_ranked(model, case, name, blend) for case in cases],
            cases,
            len(catalog),
            information,
            unknown,
        )
        for name in MODELS
    }
    return Evaluation(
        models=results,
        split_at=moment,
        train_touches=len(train),
        test_touches=len(test),
        test_visitors=len(cases),
        cold_visitors=cold,
        catalog_size=len(catalog),
        blend=blend,
    )
