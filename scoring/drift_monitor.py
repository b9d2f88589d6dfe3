"""Keep the drift metric current inside the gateway.

`python -m gateway models drift` prints a report on demand; this monitor
recomputes the same report in the background every `interval` seconds, so
`tessera_model_drift_max` on `/metrics` always describes the model serving
now. At start-up it shows the last stored report until the first run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from scoring.drift import DRIFT, drift_report
from scoring.errors import ScoringError
from scoring.metrics import MODEL_DRIFT_MAX
from scoring.registry import VARIANT_MODEL, ModelRegistry

logger = logging.getLogger(__name__)


class DriftMonitor:
    """Recomputes the active model's drift report periodically and exports its maximum."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        registry: ModelRegistry,
        *,
        interval: float,
        window: timedelta,
        clock: Callable[[], datetime],
        kind: str = VARIANT_MODEL,
    ) -> None:
        self._database = database
        self._registry = registry
        self._interval = interval
        self._window = window
        self._clock = clock
        self._kind = kind
        self._task: asyncio.Task[None] | None = None
        self._last_problem: str | None = None

    async def start(self) -> None:
        """Export the last stored report, then recompute every interval."""
        with contextlib.suppress(PyMongoError):
            stored = await self._database[DRIFT].find_one({"_id": self._kind})
            if stored is not None and isinstance(stored.get("max_statistic"), (int, float)):
                MODEL_DRIFT_MAX.set(float(stored["max_statistic"]))
        self._task = asyncio.create_task(self._run(), name=f"drift-{self._kind}")

    async def aclose(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> float | None:
        """Compute and store one report; returns its largest statistic (None: nothing to say)."""
        try:
            report = await drift_report(
                self._database,
                self._registry,
                since=self._clock() - self._window,
                kind=self._kind,
                now=self._clock(),
            )
        except (ScoringError, PyMongoError) as exc:
            # No active model, no sample or MongoDB away: nothing to export, said once.
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._last_problem:
                logger.info("drift not computed: %s", problem)
            self._last_problem = problem
            return None
        self._last_problem = None
        return report.max_statistic

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.run_once()
