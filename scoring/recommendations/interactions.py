"""Implicit feedback: which visitor touched which product, how strongly, and when.

Events are the `/v1/events` events (validated by `profiles.validation`, from
NDJSON files or the `events` collection). A product is touched by a
`page_view` or `click` naming it (`properties.productId`), an `add_to_cart`,
and a `purchase`: one naming a product buys that product, one without buys
what the visitor's cart held (the cart is replayed from `add_to_cart` and
`remove_from_cart`, as the profile does). Each kind has a weight; models
decay weights with time (`decay`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from blocks.catalog import Catalog, Product
from common.json_input import JSONInputError, loads
from profiles.events import EventType
from profiles.validation import Event, Problem, parse_event

VIEW = "view"
CLICK = "click"
CART = "cart"
PURCHASE = "purchase"
#: How much each kind of touch says about a visitor's taste.
WEIGHTS: Mapping[str, float] = {VIEW: 1.0, CLICK: 1.0, CART: 3.0, PURCHASE: 5.0}
#: Kinds that put a product in a basket (what "frequently bought together" counts).
BASKET_KINDS = frozenset({CART, PURCHASE})
#: A new session starts after this long without events (as in `profiles.traits`).
SESSION_GAP = timedelta(minutes=30)
#: Historical files may hold events years old: they are never clamped to the present.
_NO_SKEW_LIMIT = timedelta(days=365 * 200)


@dataclass(frozen=True, slots=True)
class Interaction:
    """One visitor touching one product."""

    visitor: str
    item: str
    kind: str
    at: datetime

    @property
    def weight(self) -> float:
        """The kind's weight, before time decay."""
        return WEIGHTS[self.kind]


def decay(weight: float, at: datetime, now: datetime, half_life_days: float) -> float:
    """`weight` halved every `half_life_days` between `at` and `now` (no decay if 0)."""
    if half_life_days <= 0 or at >= now:
        return weight
    days = (now - at).total_seconds() / 86400.0
    return weight * math.pow(0.5, days / half_life_days)


@dataclass(frozen=True, slots=True)
class EventFile:
    """The valid events of an NDJSON file and the problems of the others."""

    events: list[Event]
    problems: list[Problem]
    lines: int


def read_events(path: Path) -> EventFile:
    """Read an NDJSON file in the `/v1/events` format, validating each line like the endpoint."""
    now = datetime.now(UTC)
    events: list[Event] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    lines = 0
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            lines += 1
            try:
                # As `/v1/events` parses: a hostile line (nested 100,000 deep) is one problem.
                raw = loads(line, strict=False)
            except JSONInputError as exc:
                problems.append(Problem(index, "", f"line {index + 1} is not JSON: {exc}"))
                continue
            parsed = parse_event(
                raw,
                index,
                now=now,
                max_skew=_NO_SKEW_LIMIT,
                require_event_id=False,
                generated_id=f"line-{index + 1}",
            )
            if isinstance(parsed, list):
                problems.extend(parsed)
            elif parsed.event_id not in seen:  # a retried event counts once, as in the store
                seen.add(parsed.event_id)
                events.append(parsed)
    return EventFile(events, problems, lines)


def _product_id(event: Event) -> str | None:
    product = event.properties.get("productId")
    return product if isinstance(product, str) and product else None


def interactions(events: Iterable[Event]) -> list[Interaction]:
    """Every product touch in `events`, in time order (carts replayed for purchases)."""
    by_visitor: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_visitor[event.visitor_id].append(event)
    out: list[Interaction] = []
    for visitor, items in by_visitor.items():
        cart: dict[str, int] = {}
        for event in sorted(items, key=lambda e: e.timestamp):
            product = _product_id(event)
            kind = event.type
            if kind in (EventType.PAGE_VIEW, EventType.CLICK) and product:
                out.append(
                    Interaction(
                        visitor,
                        product,
                        VIEW if kind is EventType.PAGE_VIEW else CLICK,
                        event.timestamp,
                    )
                )
            elif kind is EventType.ADD_TO_CART and product:
                quantity = event.properties.get("quantity", 1)
                cart[product] = cart.get(product, 0) + (
                    quantity if isinstance(quantity, int) else 1
                )
                out.append(Interaction(visitor, product, CART, event.timestamp))
            elif kind is EventType.REMOVE_FROM_CART and product:
                cart.pop(product, None)
            elif kind is EventType.PURCHASE:
                bought = [product] if product else list(cart)
                for item in bought:
                    out.append(Interaction(visitor, item, PURCHASE, event.timestamp))
                cart.clear()
    out.sort(key=lambda i: (i.at, i.visitor, i.item))
    return out


def baskets(touches: Sequence[Interaction]) -> list[list[str]]:
    """The products carted or bought together: one basket per visitor session."""
    by_visitor: dict[str, list[Interaction]] = defaultdict(list)
    for touch in touches:
        if touch.kind in BASKET_KINDS:
            by_visitor[touch.visitor].append(touch)
    out: list[list[str]] = []
    for items in by_visitor.values():
        items.sort(key=lambda i: i.at)
        basket: list[str] = []
        last: datetime | None = None
        for touch in items:
            if last is not None and touch.at - last > SESSION_GAP and basket:
                out.append(basket)
                basket = []
            if touch.item not in basket:
                basket.append(touch.item)
            last = touch.at
        if basket:
            out.append(basket)
    return [basket for basket in out if len(basket) >= 2]


def catalog_from_events(events: Iterable[Event]) -> Catalog:
    """A catalogue of the products the events name, described by their latest properties.

    For evaluating any event file when no CMS catalogue is configured: name,
    category, tags, brand and price come from the events' properties.
    """
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for event in events:
        product = _product_id(event)
        if product is None:
            continue
        seen = latest.get(product)
        props = {k: v for k, v in event.properties.items() if v is not None}
        if seen is None:
            latest[product] = (event.timestamp, props)
        elif event.timestamp >= seen[0]:
            latest[product] = (event.timestamp, {**seen[1], **props})
        else:
            latest[product] = (seen[0], {**props, **seen[1]})
    products = []
    for sku in sorted(latest):
        props = latest[sku][1]
        tags = props.get("tags")
        price = props.get("price")
        name = props.get("name") or props.get("title")
        products.append(
            Product(
                sku=sku,
                name=str(name) if isinstance(name, str) and name else sku,
                price=float(price) if isinstance(price, (int, float)) else 0.0,
                category=str(props["category"]) if isinstance(props.get("category"), str) else None,
                tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
                brand=str(props["brand"]) if isinstance(props.get("brand"), str) else None,
            )
        )
    return Catalog(products=tuple(products), source="events")


def stored_events(documents: Iterable[Mapping[str, Any]]) -> Iterator[Event]:
    """Events rebuilt from `events` documents (the ones that cannot be are skipped)."""
    for doc in documents:
        try:
            yield Event.from_document(doc)
        except (KeyError, ValueError, TypeError):
            continue
