"""Train the recommendation models from stored events and register them.

`recommendations train` reads the product touches of a window from the
`events` collection (or an NDJSON file), reports the offline evaluation
(`evaluation`), fits every model on all of them with the hybrid's blend
chosen on a time split, and saves the result signed in the model registry
(kind `recommendations`), activated with `--activate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from blocks.catalog import Catalog
from common import collections
from profiles.events import EventType
from profiles.validation import Event
from scoring.errors import NotEnoughData
from scoring.recommendations.evaluation import Evaluation, choose_blend, evaluate
from scoring.recommendations.interactions import (
    Interaction,
    catalog_from_events,
    interactions,
    stored_events,
)
from scoring.recommendations.models import DEFAULT_PARAMS, Params, RecommendationModel, fit
from scoring.registry import RECOMMENDATIONS_MODEL, ModelRegistry

CatalogChoice = Literal["auto", "cms", "events"]
#: `auto` takes the CMS catalogue when it holds at least this share of the touched products.
MIN_CATALOG_OVERLAP = 0.5
MIN_TOUCHES = 20
_TYPES = [
    EventType.PAGE_VIEW.value,
    EventType.CLICK.value,
    EventType.ADD_TO_CART.value,
    EventType.REMOVE_FROM_CART.value,
    EventType.PURCHASE.value,
]


@dataclass(frozen=True, slots=True)
class CatalogDecision:
    """The catalogue chosen and why."""

    catalog: Catalog
    note: str


def choose_catalog(
    cms: Catalog | None, events: Sequence[Event], choice: CatalogChoice = "auto"
) -> CatalogDecision:
    """The CMS catalogue, or one built from the events (see `MIN_CATALOG_OVERLAP`)."""
    if choice == "cms":
        if cms is None:
            raise NotEnoughData(
                "no CMS catalogue is configured (--catalog events reads the events)"
            )
        return CatalogDecision(cms, f"catalogue: {len(cms)} products from the CMS ({cms.source})")
    from_events = catalog_from_events(events)
    if choice == "events" or cms is None:
        why = "as asked" if choice == "events" else "no CMS catalogue is configured"
        return CatalogDecision(
            from_events, f"catalogue: {len(from_events)} products named by the events ({why})"
        )
    touched = set(from_events.skus)
    overlap = len(touched & set(cms.skus)) / len(touched) if touched else 1.0
    if overlap >= MIN_CATALOG_OVERLAP:
        return CatalogDecision(
            cms,
            f"catalogue: {len(cms)} products from the CMS ({cms.source}); "
            f"it holds {overlap:.0%} of the products the events name",
        )
    return CatalogDecision(
        from_events,
        f"catalogue: {len(from_events)} products named by the events (the CMS catalogue holds "
        f"only {overlap:.0%} of them)",
    )


async def load_events(
    database: AsyncDatabase[dict[str, Any]], *, since: datetime, until: datetime
) -> list[Event]:
    """The product-related events stored in `[since, until)`."""
    query = {"timestamp": {"$gte": since, "$lt": until}, "type": {"$in": _TYPES}}
    projection = {
        "_id": 1,
        "type": 1,
        "visitorId": 1,
        "timestamp": 1,
        "receivedAt": 1,
        "properties": 1,
    }
    documents = [doc async for doc in database[collections.EVENTS].find(query, projection)]
    return list(stored_events(documents))


@dataclass(slots=True)
class TrainingReport:
    """What `recommendations train` measured and registered."""

    touches: int
    visitors: int
    items: int
    catalog_note: str
    model: RecommendationModel
    evaluation: Evaluation | None
    evaluation_note: str = ""
    version: str | None = None
    activated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """What the registry stores with the model."""
        out: dict[str, Any] = {
            "touches": self.touches,
            "visitors": self.visitors,
            "items": self.items,
            "blend": self.model.blend.as_dict(),
            "pairs": {
                "cf": self.model.cf.pairs,
                "content": self.model.content.pairs,
                "together": self.model.together.pairs,
            },
        }
        if self.evaluation is not None:
            out["evaluation"] = self.evaluation.as_json()["models"]
        return out

    def format(self) -> str:
        """A summary for people."""
        model = self.model
        lines = [
            f"recommendations model {self.version}{' (active)' if self.activated else ''}",
            f"  {self.touches} product touches by {self.visitors} visitors; {self.catalog_note}",
            f"  item-cf {model.cf.pairs} neighbour pairs, content {model.content.pairs}, "
            f"bought together {model.together.pairs}",
            f"  hybrid blend: cf {model.blend.cf}, content {model.blend.content}, "
            f"popularity {model.blend.popularity}",
        ]
        if self.evaluation is not None:
            lines.append("  offline evaluation (time split):")
            lines.extend("    " + line for line in self.evaluation.format().splitlines())
        elif self.evaluation_note:
            lines.append(f"  offline evaluation skipped: {self.evaluation_note}")
        return "\n".join(lines)


def fit_all(
    touches: Sequence[Interaction],
    catalog: Catalog,
    *,
    now: datetime,
    params: Params,
    test_fraction: float = 0.2,
) -> tuple[RecommendationModel, Evaluation | None, str]:
    """Evaluate on a time split (when there is enough), then fit on every touch."""
    known = [t for t in touches if t.item in catalog]
    if len(known) < MIN_TOUCHES:
        raise NotEnoughData(
            f"{len(known)} product touches of catalogue products; at least {MIN_TOUCHES} are needed"
        )
    evaluation: Evaluation | None = None
    note = ""
    try:
        evaluation = evaluate(known, catalog, test_fraction=test_fraction, params=params)
    except NotEnoughData as exc:
        note = str(exc)
    blend = choose_blend(known, catalog, params=params, test_fraction=test_fraction)
    model = fit(known, catalog, now=now, params=params, blend=blend)
    return model, evaluation, note


async def train_recommendations(
    registry: ModelRegistry,
    events: Sequence[Event],
    catalog: CatalogDecision,
    *,
    now: datetime,
    window: dict[str, Any],
    params: Params = DEFAULT_PARAMS,
    activate: bool = False,
) -> TrainingReport:
    """Fit, evaluate and register the models (kind `recommendations`)."""
    touches = interactions(events)
    model, evaluation, note = await asyncio.to_thread(
        fit_all, touches, catalog.catalog, now=now, params=params
    )
    known = [t for t in touches if t.item in catalog.catalog]
    report = TrainingReport(
        touches=len(known),
        visitors=len({t.visitor for t in known}),
        items=len(model.items),
        catalog_note=catalog.note,
        model=model,
        evaluation=evaluation,
        evaluation_note=note,
    )
    info = await registry.save(
        model,
        kind=RECOMMENDATIONS_MODEL,
        metrics=report.metrics(),
        features=["item-cf", "content", "popularity", "together"],
        window={**window, "catalog": catalog.catalog.source, "halfLifeDays": params.half_life_days},
        now=now,
    )
    report.version = info.version
    if activate:
        await registry.activate(info.version)
        report.activated = True
    return report
