"""Keep the drift metric current inside the gateway.

`python -m gateway models drift` prints a report on demand; this monitor
recomputes the same report in the background every `interval` seconds, so
`tessera_model_drift_max{test}` on `/metrics` describes the model serving
now. At start-up it shows the last stored report (if it is of the active
model) until the first run. Between runs it checks the active version every
`check_seconds`: when another model is activated (or none is), the samples
are removed at once and a new report is computed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from common.service import Service, cancel
from scoring.drift import DRIFT, drift_report, export_drift, report_from_document
from scoring.errors import ScoringError
from scoring.registry import VARIANT_MODEL, LoadedModel, ModelRegistry

logger = logging.getLogger(__name__)


class DriftMonitor(Service):
    """Recomputes the active model's drift report periodically and exports its maxima."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        registry: ModelRegistry,
        *,
        interval: float,
        window: timedelta,
        clock: Callable[[], datetime],
        kind: str = VARIANT_MODEL,
        current: Callable[[], LoadedModel | None] | None = None,
        check_seconds: float = 30.0,
    ) -> None:
        self._database = database
        self._registry = registry
        self._interval = interval
        self._window = window
        self._clock = clock
        self._kind = kind
        # The model a ModelServer already holds: reused when it is the active version.
        self._current = current
        self._check = min(check_seconds, interval)
        self._task: asyncio.Task[None] | None = None
        self._last_problem: str | None = None
        #: The version the exported samples describe (None: nothing exported).
        self._reported: str | None = None

    async def start(self) -> None:
        """Export the last stored report if it is the active model's, then keep it current."""
        try:
            stored = await self._database[DRIFT].find_one({"_id": self._kind})
            active = await self._registry.active_version(self._kind)
            if stored is not None and active is not None and stored.get("model_version") == active:
                export_drift(report_from_document(stored))
                self._reported = active
        except PyMongoError:
            pass  # MongoDB away: the first run will say so
        except Exception as exc:
            self._problem(f"{type(exc).__name__}: {exc}", unexpected=True)
        self._task = asyncio.create_task(self._run(), name=f"drift-{self._kind}")

    async def aclose(self) -> None:
        """Stop the background task."""
        await cancel(self._task)
        self._task = None

    async def run_once(self) -> float | None:
        """Compute and store one report; returns its largest statistic (None: nothing to say).

        Never raises (except cancellation): each distinct problem is logged once.
        """
        try:
            report = await drift_report(
                self._database,
                self._registry,
                since=self._clock() - self._window,
                kind=self._kind,
                now=self._clock(),
                current=self._current,
            )
        except (ScoringError, PyMongoError) as exc:
            # No active model, no sample or MongoDB away: nothing to export, said once.
            if isinstance(exc, ScoringError):
                self._reported = None  # drift_report removed the samples
            self._problem(f"{type(exc).__name__}: {exc}", unexpected=False)
            return None
        except Exception as exc:
            # A bug or a model that cannot score: the samples no longer describe anything.
            export_drift(None)
            self._reported = None
            self._problem(f"{type(exc).__name__}: {exc}", unexpected=True)
            return None
        self._last_problem = None
        self._reported = report.model_version if report.max_statistic is not None else None
        return report.max_statistic

    async def check_active(self) -> bool:
        """Whether the exported samples still describe the active model; removes them if not."""
        active = await self._registry.active_version(self._kind)
        if self._reported is not None and active != self._reported:
            export_drift(None)
            self._reported = None
            return False
        return True

    def _problem(self, problem: str, *, unexpected: bool) -> None:
        if problem != self._last_problem:
            if unexpected:
                logger.exception("drift not computed: %s", problem)
            else:
                logger.info("drift not computed: %s", problem)
        self._last_problem = problem

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self._interval
        while True:
            await asyncio.sleep(max(0.0, min(self._check, due - loop.time())))
            try:
                changed = not await self.check_active()
            except PyMongoError as exc:
                self._problem(f"{type(exc).__name__}: {exc}", unexpected=False)
                changed = False
            except Exception as exc:
                self._problem(f"{type(exc).__name__}: {exc}", unexpected=True)
                changed = False
            if changed or loop.time() >= due:
                await self.run_once()
                due = loop.time() + self._interval
