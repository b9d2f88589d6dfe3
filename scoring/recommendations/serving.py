"""Serve the active recommendation models within the scoring budget, hot-reloaded.

`RecommendationServer` is a `ModelServer` of kind `recommendations`: the
same polling, signature check and refusal of bad versions, the same small
thread pool and in-flight limit. `recommend` answers every recommendations
block of a page in one call to the pool and waits at most the budget (what
the page's variant scoring left of `SCORING_BUDGET_MS`); on timeout, error
or no model it answers None and the caller falls back to popularity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from prometheus_client import Counter, Histogram

from blocks.recommendations import BOUGHT_TOGETHER, PERSONALIZED, SIMILAR
from scoring.recommendations.models import HYBRID, POPULARITY, RecommendationModel
from scoring.registry import RECOMMENDATIONS_MODEL, LoadedModel, ModelRegistry
from scoring.serving import ModelServer

logger = logging.getLogger(__name__)

Outcome = Literal["served", "timeout", "error", "no_model"]

RECOMMENDATION_CALLS = Counter(
    "tessera_recommendation_calls",
    "Pages whose recommendations blocks asked the model, by outcome "
    "(served, timeout, error, no_model).",
    ["outcome"],
)
#: Each outcome's counter, looked up once (`labels()` hashes and locks on every call).
_CALLS = {outcome: RECOMMENDATION_CALLS.labels(outcome=outcome) for outcome in get_args(Outcome)}
RECOMMENDATION_SECONDS = Histogram(
    "tessera_recommendation_seconds",
    "Time to compute a page's recommendations with the model.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
#: Strategies the model answers (trending and recently viewed need no model).
MODEL_STRATEGIES = frozenset({PERSONALIZED, SIMILAR, BOUGHT_TOGETHER})


@dataclass(frozen=True, slots=True)
class Ask:
    """One block's question to the model."""

    strategy: str
    limit: int
    anchor: str | None = None
    #: The visitor's touches: `(product id, weight, when)`.
    history: tuple[tuple[str, float, datetime], ...] = ()
    #: Products the answer must not hold.
    exclude: frozenset[str] = frozenset()
    #: Products to start "bought together" from when there is no anchor (the cart).
    basket: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """The products for one block (best first) and which model produced them."""

    items: tuple[str, ...]
    #: `hybrid`, `popularity` (a visitor without history), `similar`, `together`, or
    #: empty when the model had nothing (the caller falls back).
    source: str


@dataclass(frozen=True, slots=True)
class Answers:
    """Every block's answer, the model version, and the outcome."""

    answers: tuple[Answer, ...] | None
    version: str | None
    outcome: Outcome


def answer(model: RecommendationModel, ask: Ask, now: datetime) -> Answer:
    """The model's products for one block (pure; runs in the scoring threads)."""
    exclude = set(ask.exclude)
    if ask.strategy == PERSONALIZED:
        history = model.history(ask.history, now)
        items = model.recommend(history, ask.limit, exclude=exclude, model=HYBRID)
        return Answer(tuple(items), HYBRID if history else POPULARITY)
    if ask.strategy == SIMILAR and ask.anchor:
        return Answer(tuple(model.similar(ask.anchor, ask.limit, exclude)), "similar")
    if ask.strategy == BOUGHT_TOGETHER:
        anchors = [ask.anchor] if ask.anchor else list(ask.basket)
        items = model.bought_together(anchors, ask.limit, exclude)
        if items:
            return Answer(tuple(items), "together")
        if ask.anchor:
            # Never bought with anything yet: what is like it is the next best thing.
            return Answer(tuple(model.similar(ask.anchor, ask.limit, exclude)), "similar")
    return Answer((), "")


def _answer_all(model: RecommendationModel, asks: Sequence[Ask], now: datetime) -> list[Answer]:
    return [answer(model, ask, now) for ask in asks]


def _warm(model: RecommendationModel) -> None:
    """One throwaway answer per strategy: the first page must not pay for cold code paths."""
    if not model.items:
        return
    first = model.items[0]
    now = model.trained_at
    asks = [
        Ask(PERSONALIZED, 4, history=((first, 1.0, now),)),
        Ask(SIMILAR, 4, anchor=first),
        Ask(BOUGHT_TOGETHER, 4, anchor=first),
    ]
    _answer_all(model, asks, now)


class RecommendationServer(ModelServer):
    """The active `recommendations` model, asked off the event loop within a budget."""

    def __init__(
        self, registry: ModelRegistry, *, budget: float, poll_seconds: float, workers: int = 2
    ) -> None:
        super().__init__(
            registry,
            budget=budget,
            poll_seconds=poll_seconds,
            kind=RECOMMENDATIONS_MODEL,
            workers=workers,
        )

    def _set_model(self, model: LoadedModel | None) -> None:
        super()._set_model(model)
        estimator = None if model is None else model.estimator
        if isinstance(estimator, RecommendationModel) and self._executor is not None:
            # Off the event loop and never waited for: the measured first page took 15 ms
            # (thread start, first numpy calls) where the next ones took 3.
            with contextlib.suppress(RuntimeError):
                self._executor.submit(_warm, estimator)

    @property
    def budget(self) -> float:
        """The most a page waits for its recommendations (seconds)."""
        return self._budget

    @property
    def recommender(self) -> RecommendationModel | None:
        """The model serving now, if any."""
        model = self.model
        estimator = None if model is None else model.estimator
        return estimator if isinstance(estimator, RecommendationModel) else None

    async def recommend(
        self, asks: Sequence[Ask], now: datetime, *, budget: float | None = None
    ) -> Answers:
        """Every block's answer within `budget` (default: the scoring budget)."""
        loaded = self.model
        model = self.recommender
        if loaded is None or model is None or self._executor is None:
            return self._tally(Answers(None, None, "no_model"))
        wait = self._budget if budget is None else max(0.0, min(budget, self._budget))
        with self._lock:
            busy = self._in_flight >= self._max_in_flight
            if not busy:
                self._in_flight += 1
        if busy or wait <= 0:
            if not busy:
                self._release(None)
            return self._tally(Answers(None, loaded.version, "timeout"))
        started = time.perf_counter()
        try:
            job = self._executor.submit(_answer_all, model, list(asks), now)
        except RuntimeError:  # the executor was shut down concurrently
            self._release(None)
            return self._tally(Answers(None, loaded.version, "error"))
        job.add_done_callback(self._release)
        try:
            answers = await asyncio.wait_for(asyncio.wrap_future(job), wait)
        except TimeoutError:
            return self._tally(Answers(None, loaded.version, "timeout"))
        except Exception as exc:  # a model's failure must not fail the page
            if not self._errors_logged:
                logger.error("recommendations %s failed: %r", loaded.version, exc)
            self._errors_logged = True
            return self._tally(Answers(None, loaded.version, "error"))
        finally:
            RECOMMENDATION_SECONDS.observe(time.perf_counter() - started)
        self._errors_logged = False
        return self._tally(Answers(tuple(answers), loaded.version, "served"))

    @staticmethod
    def _tally(result: Answers) -> Answers:
        _CALLS[result.outcome].inc()
        return result
