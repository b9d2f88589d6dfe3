"""From exposure documents and events to one row per experiment unit (pure).

The unit is what the experiment hashed (`visitorId:v-1`, or `userId:u-9` once
a user-hashed experiment knows the user); each exposure names it, and units
that share a visitor are joined into one person. Exposures come from two
sources: the gateway's exposure log (one document per served page view) and
`block_view` beacons that name the experiment, sent by clients whose page an
edge cache served (the gateway never saw that request). Both are reduced to
one exposure per unit, experiment and UTC day; a unit's first exposure
starts its measurement window. A unit exposed to two variations (a changed
split without sticky buckets, a beacon that disagrees) is left out and counted.

Metrics come from the unit's visitors' events after their first exposure:

- `conversion`: whether the unit purchased (a proportion);
- `clickThrough`: whether it clicked one of the experiment's blocks (a proportion);
- `revenue`: revenue per unit, the sum of `purchase` revenue (a mean);
- `custom:<name>`: how many `custom` events named `<name>` it sent (a mean).

The same metric over `pre_days` before the first exposure is the CUPED covariate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

MetricKind = Literal["proportion", "mean"]

#: How far before a unit's first exposure the CUPED covariate looks.
PRE_DAYS = 14


def metric_kind(metric: str) -> MetricKind:
    """Whether a metric is a proportion (z-test) or a mean (Welch's t-test)."""
    return "proportion" if metric in ("conversion", "clickThrough") else "mean"


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One exposure of a unit to a variation at a moment (from the log or a beacon)."""

    unit: str
    visitor_id: str
    variation: int
    at: datetime
    source: Literal["log", "beacon"] = "log"


@dataclass(slots=True)
class Unit:
    """A unit's exposures, reduced: its variation, first exposure and visitors."""

    unit: str
    variation: int
    first: datetime
    visitors: set[str] = field(default_factory=set)
    days: set[date] = field(default_factory=set)
    beacon_only_days: set[date] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Exposures:
    """The units of an experiment and what the reduction left out."""

    units: tuple[Unit, ...]
    #: Exposures after reduction: one per unit, experiment and day.
    daily_exposures: int
    #: Of those, days known only from a `block_view` beacon (an edge-served page).
    beacon_only: int
    #: Units seen in more than one variation (left out).
    multiple_variations: int


def log_exposures(documents: Iterable[Mapping[str, Any]], key: str) -> list[Exposure]:
    """The exposures of experiment `key` in exposure-log page documents."""
    out: list[Exposure] = []
    for doc in documents:
        at = _aware(doc.get("ts"))
        visitor = doc.get("visitorId")
        if at is None or not isinstance(visitor, str):
            continue
        seen: set[int] = set()
        for block in doc.get("blocks") or ():
            if not isinstance(block, Mapping) or block.get("experiment") != key:
                continue
            variation = block.get("variation")
            if not isinstance(variation, int) or isinstance(variation, bool) or variation in seen:
                continue
            seen.add(variation)  # a multivariate experiment logs each of its blocks
            unit = block.get("unit")
            out.append(
                Exposure(
                    unit=unit if isinstance(unit, str) and unit else f"visitorId:{visitor}",
                    visitor_id=visitor,
                    variation=variation,
                    at=at,
                )
            )
    return out


def beacon_exposures(
    events: Iterable[Mapping[str, Any]], key: str, *, num_variations: int | None
) -> list[Exposure]:
    """Exposures from `block_view` events naming the experiment and variation.

    A client copies `decision { experiment variation }` into the beacon's
    `properties` when `decision.reason` is `experiment`; a beacon that says
    another `reason` (a shipped winner, a preview) is no exposure.
    """
    out: list[Exposure] = []
    for event in events:
        if event.get("type") != "block_view":
            continue
        at = _aware(event.get("timestamp"))
        visitor = event.get("visitorId")
        if at is None or not isinstance(visitor, str):
            continue
        props = event.get("properties") or {}
        if props.get("experiment") != key or props.get("reason") not in (None, "experiment"):
            continue
        variation = props.get("variation")
        if not isinstance(variation, int) or isinstance(variation, bool) or variation < 0:
            continue
        if num_variations is not None and variation >= num_variations:
            continue  # not a variation of this experiment: a stale or forged beacon
        out.append(Exposure(f"visitorId:{visitor}", visitor, variation, at, "beacon"))
    return out


class _People:
    """Union-find over unit names and visitor ids: who is the same person."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        parent = self._parent.setdefault(node, node)
        while parent != node:
            grand = self._parent[parent]
            self._parent[node] = grand  # path halving
            node, parent = parent, self._parent.setdefault(grand, grand)
        return node

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self._parent[root_b] = root_a


def _preferred(names: Iterable[str]) -> str:
    """The name of a joined unit: a user id when one is known, else the first."""
    ordered = sorted(names)
    return next((name for name in ordered if name.startswith("userId:")), ordered[0])


def reduce_exposures(exposures: Iterable[Exposure]) -> Exposures:
    """One exposure per unit and day; each unit's first exposure; mixed units left out.

    Units that share a visitor are one person: a user-hashed experiment logs
    `visitorId:v` while the visitor is anonymous and `userId:u` after
    `identify` (sticky buckets keep the arm), and a beacon names the visitor.
    """
    items = list(exposures)
    people = _People()
    for exposure in items:
        people.union(f"unit:{exposure.unit}", f"visitor:{exposure.visitor_id}")
    names: dict[str, set[str]] = defaultdict(set)
    for exposure in items:
        names[people.find(f"unit:{exposure.unit}")].add(exposure.unit)
    canonical = {root: _preferred(units) for root, units in names.items()}
    by_unit: dict[str, Unit] = {}
    mixed: set[str] = set()
    logged_days: dict[str, set[date]] = defaultdict(set)
    beacon_days: dict[str, set[date]] = defaultdict(set)
    for exposure in sorted(items, key=lambda e: e.at):
        unit_key = canonical[people.find(f"unit:{exposure.unit}")]
        day = exposure.at.date()
        unit = by_unit.get(unit_key)
        if unit is None:
            unit = by_unit[unit_key] = Unit(unit_key, exposure.variation, exposure.at)
        elif unit.variation != exposure.variation:
            mixed.add(unit_key)
        unit.first = min(unit.first, exposure.at)
        unit.visitors.add(exposure.visitor_id)
        (logged_days if exposure.source == "log" else beacon_days)[unit_key].add(day)
    daily = beacon_only = 0
    for unit_key, unit in by_unit.items():
        unit.days = logged_days[unit_key] | beacon_days[unit_key]
        unit.beacon_only_days = beacon_days[unit_key] - logged_days[unit_key]
        daily += len(unit.days)
        beacon_only += len(unit.beacon_only_days)
    units = tuple(
        sorted(
            (unit for key, unit in by_unit.items() if key not in mixed),
            key=lambda u: (u.first, u.unit),
        )
    )
    return Exposures(units, daily, beacon_only, len(mixed))


def _revenue(properties: Mapping[str, Any]) -> float:
    revenue = properties.get("revenue")
    if isinstance(revenue, int | float) and not isinstance(revenue, bool):
        return float(revenue)
    price, quantity = properties.get("price", 0), properties.get("quantity", 1)
    if isinstance(price, int | float) and isinstance(quantity, int | float):
        return float(price) * float(quantity)
    return 0.0


def event_value(metric: str, event: Mapping[str, Any], blocks: frozenset[str]) -> float:
    """What one event adds to a unit's metric (0 when it does not count)."""
    kind = event.get("type")
    props = event.get("properties") or {}
    if metric == "conversion":
        return 1.0 if kind == "purchase" else 0.0
    if metric == "revenue":
        return _revenue(props) if kind == "purchase" else 0.0
    if metric == "clickThrough":
        return 1.0 if kind == "click" and event.get("blockId") in blocks else 0.0
    if metric.startswith("custom:"):
        return 1.0 if kind == "custom" and props.get("name") == metric[len("custom:") :] else 0.0
    return 0.0


@dataclass(slots=True)
class UnitRow:
    """A unit's metrics after (and before) its first exposure, with every contribution's time."""

    unit: str
    variation: int
    first: datetime
    #: metric → [(when, value)] for events after the first exposure.
    after: Mapping[str, tuple[tuple[datetime, float], ...]]
    #: metric → the pre-period value (the CUPED covariate).
    before: Mapping[str, float]

    def value(self, metric: str, until: datetime | None = None) -> float:
        """The unit's metric from its first exposure up to `until` (proportions cap at 1)."""
        contributions = self.after.get(metric)
        if not contributions:
            return 0.0
        total = sum(v for at, v in contributions if until is None or at <= until)
        return min(total, 1.0) if metric_kind(metric) == "proportion" else total

    def pre(self, metric: str) -> float:
        """The pre-period value of the metric (proportions cap at 1)."""
        total = self.before.get(metric, 0.0)
        if not total:
            return 0.0
        return min(total, 1.0) if metric_kind(metric) == "proportion" else total


def unit_rows(
    units: Sequence[Unit],
    events: Iterable[Mapping[str, Any]],
    metrics: Sequence[str],
    blocks: frozenset[str],
    *,
    pre_days: int = PRE_DAYS,
) -> list[UnitRow]:
    """Each unit's metrics from its visitors' events."""
    unit_of: dict[str, Unit] = {}
    for unit in units:
        for visitor in unit.visitors:
            unit_of.setdefault(visitor, unit)
    after: dict[str, dict[str, list[tuple[datetime, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    before: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    window = timedelta(days=pre_days)
    for event in events:
        owner = unit_of.get(str(event.get("visitorId")))
        at = _aware(event.get("timestamp"))
        if owner is None or at is None:
            continue
        for metric in metrics:
            value = event_value(metric, event, blocks)
            if not value:
                continue
            if at >= owner.first:
                after[owner.unit][metric].append((at, value))
            elif at >= owner.first - window:
                before[owner.unit][metric] += value
    empty: Mapping[str, Any] = {}
    return [
        UnitRow(
            unit=unit.unit,
            variation=unit.variation,
            first=unit.first,
            after=(
                {m: tuple(sorted(v)) for m, v in after[unit.unit].items()}
                if unit.unit in after
                else empty
            ),
            before=dict(before[unit.unit]) if unit.unit in before else empty,
        )
        for unit in units
    ]
