"""Serve the active variant model: score a page's tiers within a time budget, hot-reload.

The estimator runs in a small dedicated thread pool, never on the event loop,
and the caller waits at most `budget` seconds (queue wait included): a slow
model costs a page its ranking, never its latency. A background task polls
`models.state` and swaps a newly activated version in once it has been
fetched and its signature verified; a version that fails to load is refused
and the current model keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.errors import PyMongoError

from blocks.selection import PagePlan
from common.service import Service, cancel
from scoring.features import Snapshot, candidate_rows
from scoring.metrics import ACTIVE_MODEL, MODEL_LOAD_FAILURES, SCORING, SCORING_SECONDS
from scoring.registry import VARIANT_MODEL, LoadedModel, ModelRegistry

logger = logging.getLogger(__name__)

Outcome = Literal["scored", "timeout", "error", "no_model", "nothing_to_score"]
_Candidate = tuple[str, str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores by `(block_id, variant_id)` (None unless scored), the model version, the outcome."""

    scores: Mapping[tuple[str, str], float] | None
    version: str | None
    outcome: Outcome


def plan_candidates(plan: PagePlan) -> list[_Candidate]:
    """Every variant of every tier with a choice: `(block_id, variant_id, tags)`."""
    return [
        (block.block.id, candidate.variant.id, candidate.variant.tags)
        for block in plan.contested
        for candidate in block.tier
    ]


def _predict(estimator: Any, snapshot: Snapshot, candidates: list[_Candidate]) -> list[float]:
    rows = candidate_rows(snapshot, candidates)
    # One call for the whole page: per-call overhead dominates small models.
    probabilities = estimator.predict_proba(rows)[:, 1]
    return [float(value) for value in probabilities]


class ModelServer(Service):
    """The active model of one kind, scored off the event loop and reloaded when it changes."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        budget: float,
        poll_seconds: float,
        kind: str = VARIANT_MODEL,
        workers: int = 2,
    ) -> None:
        self._registry = registry
        self._budget = budget
        self._poll = poll_seconds
        self._kind = kind
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        # Calls submitted and not finished, including ones abandoned after a timeout:
        # past the limit a page does not queue behind them, it falls back at once.
        self._in_flight = 0
        self._max_in_flight = workers * 2
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._refused: str | None = None
        self._poll_failing = False
        self._load_failing = False
        self._errors_logged = False
        self._watch_problem: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def model(self) -> LoadedModel | None:
        """The model serving now, if any."""
        return self._model

    @property
    def version(self) -> str | None:
        """The version serving now, if any."""
        return None if self._model is None else self._model.version

    async def start(self) -> None:
        """Load the active model (a failure is logged, not fatal) and start watching."""
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="tessera-score")
        try:
            await self._sync(await self._registry.active_version(self._kind))
        except PyMongoError as exc:
            logger.warning("active %s model unknown, MongoDB unavailable: %s", self._kind, exc)
        self._task = asyncio.create_task(self._watch(), name=f"model-watch-{self._kind}")

    async def aclose(self) -> None:
        """Stop watching and release the scoring threads (a running call is abandoned)."""
        await cancel(self._task)
        self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._set_model(None)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self._poll_once()
            except Exception as exc:
                # Whatever went wrong, the watcher keeps polling: dying here would
                # freeze the replica on its current model. Logged once per problem.
                problem = f"{type(exc).__name__}: {exc}"
                if problem != self._watch_problem:
                    logger.exception("model watch failed, keeping %s: %s", self.version, problem)
                self._watch_problem = problem
            else:
                self._watch_problem = None

    async def _poll_once(self) -> None:
        try:
            version = await self._registry.active_version(self._kind)
        except PyMongoError as exc:
            if not self._poll_failing:
                logger.warning("model poll failed, keeping %s: %s", self.version, exc)
            self._poll_failing = True
            return
        self._poll_failing = False
        await self._sync(version)

    async def _sync(self, version: str | None) -> None:
        """Serve `version`: load and verify it first; keep the current model on failure."""
        if version == self.version:
            return
        if version is None:
            logger.info("no active %s model any more: serving without one", self._kind)
            self._set_model(None)
            return
        if version == self._refused:
            return  # already refused and logged; wait for another activation
        try:
            loaded = await self._registry.load(version)
        except PyMongoError as exc:
            # Transient: not the artifact's fault, so the next poll tries again.
            if not self._load_failing:
                logger.warning("model %s not loaded yet, MongoDB unavailable: %s", version, exc)
            self._load_failing = True
            return
        except Exception as exc:
            # SignatureMismatch, a missing version, anything unpickling can raise:
            # none of them may stop the current model from serving.
            self._refused = version
            MODEL_LOAD_FAILURES.labels(kind=self._kind).inc()
            logger.error(
                "model %s refused, still serving %s: %s", version, self.version or "no model", exc
            )
            return
        self._refused = None
        self._load_failing = False
        self._set_model(loaded)
        logger.info("now serving %s model %s", self._kind, version)

    def _set_model(self, model: LoadedModel | None) -> None:
        previous = self._model
        # One reference assignment: a concurrent `score` sees the old or the new model.
        self._model = model
        if previous is not None and (model is None or previous.version != model.version):
            with contextlib.suppress(KeyError):
                ACTIVE_MODEL.remove(self._kind, previous.version)
        if model is not None:
            ACTIVE_MODEL.labels(kind=self._kind, version=model.version).set(1)

    def _release(self, _: object) -> None:
        # Runs when the call finishes or is cancelled before it started, in any thread.
        with self._lock:
            self._in_flight -= 1

    async def score(self, plan: PagePlan, snapshot: Snapshot) -> ScoreResult:
        """Score every candidate of the plan's contested tiers within the budget."""
        model = self._model
        if model is None or self._executor is None:
            return self._count(ScoreResult(None, None, "no_model"))
        candidates = plan_candidates(plan)
        if not candidates:
            return self._count(ScoreResult(None, model.version, "nothing_to_score"))
        with self._lock:
            busy = self._in_flight >= self._max_in_flight
            if not busy:
                self._in_flight += 1
        if busy:
            # Earlier calls still hold every slot: waiting would only burn the budget.
            return self._count(ScoreResult(None, model.version, "timeout"))
        started = time.perf_counter()
        try:
            job = self._executor.submit(_predict, model.estimator, snapshot, candidates)
        except RuntimeError:  # the executor was shut down concurrently
            self._release(None)
            return self._count(ScoreResult(None, model.version, "error"))
        job.add_done_callback(self._release)
        try:
            # On timeout the wrapper cancels the job if it is still queued.
            values = await asyncio.wait_for(asyncio.wrap_future(job), self._budget)
        except TimeoutError:
            return self._count(ScoreResult(None, model.version, "timeout"))
        except Exception as exc:  # a model's failure must not fail the page
            if not self._errors_logged:
                logger.error("model %s failed to score: %r", model.version, exc)
            self._errors_logged = True
            return self._count(ScoreResult(None, model.version, "error"))
        finally:
            SCORING_SECONDS.observe(time.perf_counter() - started)
        if len(values) != len(candidates):
            return self._count(ScoreResult(None, model.version, "error"))
        self._errors_logged = False
        keys = [(block, variant) for block, variant, _ in candidates]
        scores = dict(zip(keys, values, strict=True))
        return self._count(ScoreResult(scores, model.version, "scored"))

    @staticmethod
    def _count(result: ScoreResult) -> ScoreResult:
        SCORING.labels(outcome=result.outcome).inc()
        return result
