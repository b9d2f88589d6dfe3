"""Training data from attributed exposures.

Only exposures where the logging policy had a real choice (two candidates or
more) and recorded its propensity are used; off-policy evaluation further
keeps those it chose at random (propensity below 1). Each gives one row, the
chosen variant's features, labelled by whether it was clicked. The split is
by time (the last fifth is validation), so validation measures what happens
after training, as in production. Exposures are stored one document per page view; each block of
it is one candidate row (`scoring.exposures.block_exposures`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from scoring.errors import NotEnoughData
from scoring.exposures import EXPOSURES, block_exposures
from scoring.features import Snapshot, candidate_row

MIN_ROWS = 50
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class LoggedExposure:
    """One logged choice among candidates, with its outcome."""

    exposure_id: str
    ts: datetime
    snapshot: Snapshot
    block_id: str
    variant_id: str
    propensity: float
    candidates: tuple[tuple[str, tuple[str, ...]], ...]
    clicked: bool

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags of the chosen candidate."""
        return next((tags for vid, tags in self.candidates if vid == self.variant_id), ())

    def row(self) -> dict[str, float]:
        """The feature row of the logged choice."""
        return candidate_row(self.snapshot, self.block_id, self.variant_id, self.tags)

    def candidate_rows(self) -> list[dict[str, float]]:
        """The feature rows of every logged candidate, in logged order."""
        return [candidate_row(self.snapshot, self.block_id, v, t) for v, t in self.candidates]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Time-ordered training and validation exposures."""

    train: tuple[LoggedExposure, ...]
    validation: tuple[LoggedExposure, ...]

    @property
    def all(self) -> tuple[LoggedExposure, ...]:
        """Training then validation exposures, in time order."""
        return self.train + self.validation

    @staticmethod
    def xy(exposures: Iterable[LoggedExposure]) -> tuple[list[dict[str, float]], list[int]]:
        """Feature rows and click labels."""
        items = list(exposures)
        return [e.row() for e in items], [int(e.clicked) for e in items]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def logged_exposure(doc: Mapping[str, Any]) -> LoggedExposure | None:
    """The (flattened, per-block) exposure as a training example, or None when it cannot be one."""
    candidates = doc.get("candidates") or []
    propensity = doc.get("propensity")
    if len(candidates) < 2 or not isinstance(propensity, (int, float)) or propensity <= 0:
        return None
    parsed = tuple(
        (str(c["variantId"]), tuple(str(t) for t in c.get("tags") or ())) for c in candidates
    )
    if doc["variantId"] not in {vid for vid, _ in parsed}:
        return None
    outcome = doc.get("outcome") or {}
    return LoggedExposure(
        exposure_id=str(doc["_id"]),
        ts=_aware(doc["ts"]),
        snapshot=dict(doc.get("features") or {}),
        block_id=str(doc["blockId"]),
        variant_id=str(doc["variantId"]),
        propensity=float(propensity),
        candidates=parsed,
        clicked=bool(outcome.get("click")),
    )


def split_dataset(
    exposures: Iterable[LoggedExposure],
    *,
    validation_fraction: float = VALIDATION_FRACTION,
    min_rows: int = MIN_ROWS,
) -> Dataset:
    """Sort by time and hold out the last `validation_fraction` for validation."""
    ordered = sorted(exposures, key=lambda e: (e.ts, e.exposure_id))
    if len(ordered) < min_rows:
        raise NotEnoughData(
            f"{len(ordered)} usable exposures (with a choice among 2+ candidates and a "
            f"propensity, and an attributed outcome); at least {min_rows} are needed"
        )
    cut = len(ordered) - max(1, round(len(ordered) * validation_fraction))
    train, validation = tuple(ordered[:cut]), tuple(ordered[cut:])
    for name, part in (("training", train), ("validation", validation)):
        clicks = sum(e.clicked for e in part)
        if clicks in (0, len(part)):
            raise NotEnoughData(
                f"the {name} window has a single class ({clicks} clicks in {len(part)} "
                "exposures): a click model needs both clicks and non-clicks"
            )
    return Dataset(train=train, validation=validation)


async def load_dataset(
    database: AsyncDatabase[dict[str, Any]],
    *,
    since: datetime,
    until: datetime,
    validation_fraction: float = VALIDATION_FRACTION,
    min_rows: int = MIN_ROWS,
    block_ids: Sequence[str] | None = None,
) -> Dataset:
    """The attributed exposures logged in [since, until], split by time."""
    # Matches page views with at least one attributed block; blocks are filtered below.
    query: dict[str, Any] = {
        "ts": {"$gte": since, "$lte": until},
        "blocks.outcome": {"$exists": True},
    }
    wanted = set(block_ids or ())
    if wanted:
        query["blocks.blockId"] = {"$in": sorted(wanted)}
    parsed = [
        logged_exposure(record)
        async for doc in database[EXPOSURES].find(query)
        for record in block_exposures(doc)
        if "outcome" in record and (not wanted or record.get("blockId") in wanted)
    ]
    return split_dataset(
        [e for e in parsed if e is not None],
        validation_fraction=validation_fraction,
        min_rows=min_rows,
    )
