"""Exposure logging: one document per served page view, written in batches off the request path.

A page document holds the visitor's feature snapshot once and one entry per
block in `blocks` (a per-block document per block was more inserts than
MongoDB could take under load). `record` only enqueues (never blocks, never
raises); a background writer drains the queue with unordered `insert_many`
batches. When the queue is full or MongoDB refuses a batch, page documents
are dropped and counted rather than slowing pages down. `block_exposures`
flattens a page document into the per-block records attribution, training
and drift work on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from blocks.context import TargetingContext
from blocks.experiments import hash_attributes, unit_of
from blocks.model import Page
from blocks.selection import PageDecision, Scores
from common import collections
from common.service import Service, Timeout, cancel, seconds
from scoring.features import Snapshot, visitor_snapshot
from scoring.metrics import EXPOSURE_WRITES_DEFERRED, EXPOSURES_DROPPED, EXPOSURES_LOGGED

logger = logging.getLogger(__name__)

EXPOSURES = collections.EXPOSURES
#: Page-level fields every flattened block record repeats.
PAGE_FIELDS = ("visitorId", "page", "locale", "ts", "personalized", "features")


def exposure_document(
    *,
    visitor_id: str,
    page: Page,
    locale: str,
    decision: PageDecision,
    context: TargetingContext,
    scores: Scores | None,
    now: datetime,
    features: Snapshot | None = None,
    recommendations: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One exposure document for a served page view, holding one entry per block.

    `recommendations` (block id → strategy, source, items, model version) says
    which products each recommendations block showed, for online evaluation.
    """
    if features is None:
        features = visitor_snapshot(context)
    blocks: list[dict[str, Any]] = []
    for block, record in zip(page.blocks, decision.decisions, strict=True):
        ids = record.candidates if len(record.candidates) > 1 else (record.variant_id,)
        candidates = []
        for variant_id in ids:
            score = (scores or {}).get((block.id, variant_id))
            if variant_id == record.variant_id and score is None:
                score = record.score
            candidates.append(
                {
                    "variantId": variant_id,
                    "tags": list(block.variant(variant_id).tags),
                    "score": score,
                }
            )
        entry: dict[str, Any] = {
            "blockId": block.id,
            "variantId": record.variant_id,
            "reason": record.reason,
            "ruleId": record.rule_id,
            "score": record.score,
            "propensity": record.propensity,
            "modelVersion": record.model_version,
            "candidates": candidates,
        }
        shown = (recommendations or {}).get(block.id)
        if shown is not None:
            entry["recommendations"] = dict(shown)
        if record.experiment is not None and record.in_experiment:
            # An experiment exposure (issue 14): what `experiments/` analyses.
            entry["experiment"] = record.experiment
            entry["variation"] = record.variation
            entry["bucket"] = record.bucket
            experiment = page.experiment(record.experiment)
            if experiment is not None:
                entry["unit"] = unit_of(experiment, hash_attributes(context))
        blocks.append(entry)
    # Fallback decisions name the model that timed out; only a page it scored names it here.
    model_version = (
        next((r.model_version for r in decision.decisions if r.model_version), None)
        if scores is not None
        else None
    )
    return {
        "_id": uuid.uuid4().hex,
        "visitorId": visitor_id,
        "page": page.slug,
        "locale": locale,
        "ts": now,
        "personalized": decision.personalized,
        "modelVersion": model_version,
        "features": dict(features),
        "blocks": blocks,
    }


def block_exposures(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The page document's blocks as flat per-block records, `_id` "<page id>:<index>"."""
    shared = {name: doc[name] for name in PAGE_FIELDS if name in doc}
    records = []
    for index, block in enumerate(doc.get("blocks") or ()):
        # The block's own modelVersion (and outcome) win over the page's.
        records.append(
            {
                **shared,
                **block,
                "_id": f"{doc['_id']}:{index}",
                "exposureId": doc["_id"],
                "index": index,
            }
        )
    return records


class ExposureLog(Service):
    """A bounded queue of page exposure documents and the task that writes them in batches."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        flush_interval: float = 0.25,
        defer_while: Callable[[], bool] | None = None,
        max_defer: float = 5.0,
        close_timeout: Timeout = 10.0,
    ) -> None:
        self._collection = collection
        self._close_timeout = close_timeout
        #: Page documents of the batch being written (not yet logged or dropped).
        self._writing = 0
        self._defer_while = defer_while
        self._max_defer = max_defer
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._interval = flush_interval
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def pending(self) -> int:
        """Page documents queued and not yet written."""
        return self._queue.qsize()

    async def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="exposure-writer")

    def record(self, documents: Iterable[dict[str, Any]]) -> None:
        """Queue page documents for writing; drops (and counts) what does not fit. Never blocks."""
        for document in documents:
            if self._closing.is_set():
                EXPOSURES_DROPPED.labels(cause="closed").inc()
                continue
            try:
                self._queue.put_nowait(document)
            except asyncio.QueueFull:
                EXPOSURES_DROPPED.labels(cause="queue_full").inc()

    async def flush(self) -> None:
        """Wait until everything queued so far has been written (or dropped)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Write everything queued (for `close_timeout` seconds at most), then stop the writer.

        What is still queued or being written when the time is up (MongoDB down,
        say) is counted as dropped with cause `closed`: shutdown never hangs on it.
        """
        self._closing.set()
        if self._task is None:
            return
        timeout = seconds(self._close_timeout)
        queued = self._queue.qsize()
        started = time.monotonic()
        if not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), timeout)
        await cancel(self._task)
        self._task = None
        # A batch cut off mid-write may be partly stored: it is counted as dropped.
        unwritten = self._writing
        self._writing = 0
        while True:
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._queue.task_done()
            unwritten += 1
        if unwritten:
            EXPOSURES_DROPPED.labels(cause="closed").inc(unwritten)
            logger.warning(
                "exposures dropped at shutdown: %d page documents not written in %.1f s",
                unwritten,
                timeout,
            )
        elif queued:
            logger.info(
                "exposures flushed at shutdown: %d queued page documents handled in %.1f s",
                queued,
                time.monotonic() - started,
            )

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < self._batch_size - 1 and not self._closing.is_set():
                # Wait a little for more: fewer, larger writes.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._interval)
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._writing = len(batch)
            try:
                await self._yield_to_reads()
                await self._write(batch)
                self._writing = 0
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _yield_to_reads(self) -> None:
        """Hold the batch while MongoDB is busy with what pages wait on, up to `max_defer`."""
        if self._defer_while is None:
            return
        deferred = 0.0
        # Exposures can wait (and, once the queue is full, be dropped and counted);
        # profile reads missing their budget would cost pages their personalization.
        while deferred < self._max_defer and not self._closing.is_set() and self._defer_while():
            EXPOSURE_WRITES_DEFERRED.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)
            deferred += self._interval

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self._collection.insert_many(batch, ordered=False)
        except PyMongoError as exc:
            written = _inserted(exc)
            EXPOSURES_LOGGED.inc(written)
            EXPOSURES_DROPPED.labels(cause="error").inc(len(batch) - written)
            if not self._failing:
                # Once per incident: a down database would otherwise log every batch.
                logger.warning("exposures dropped, MongoDB refused a batch: %s", exc)
            self._failing = True
            return
        except Exception:
            EXPOSURES_DROPPED.labels(cause="error").inc(len(batch))
            logger.exception("exposures dropped: unexpected error writing a batch")
            return
        if self._failing:
            logger.info("exposure writes recovered")
        self._failing = False
        EXPOSURES_LOGGED.inc(len(batch))


def _inserted(exc: PyMongoError) -> int:
    """How many documents an unordered bulk insert wrote before failing."""
    details = getattr(exc, "details", None)
    if isinstance(details, Mapping):
        count = details.get("nInserted")
        if isinstance(count, int):
            return count
    return 0
