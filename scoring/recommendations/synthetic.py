"""Synthetic shoppers with latent tastes, writing `/v1/events` events.

The world (every draw from one seeded `random.Random`, so a seed is a dataset):

- **Products** come from a catalogue (the demo's by default). Each gets a
  hidden *quality* (log-normal: a few bestsellers, a long tail), a hidden
  *style* vector (`DIMENSIONS` numbers) and one to three *complements* in its
  category (a tent's footprint and stakes), bought with it more often than not.
- **Visitors** get a hidden taste over categories (a Dirichlet draw with
  `concentration` 0.3: most love one or two departments), a style preference
  vector, a device (phone, desktop, tablet), an activity level (how many
  sessions) and a buying propensity.
- **Sessions** start on the home page, pick a category by taste (now and then
  one at random), view 2-6 of its products, each drawn with probability
  proportional to `quality · exp(style · preference)`, add some to the cart
  (likelier for products they like), add a complement of what they cart, and
  sometimes buy the cart (one `purchase` without a product: the cart is what
  was bought) or leave it.

So who bought what carries real signal: visitors with the same tastes touch
the same products, and products of a basket go together. `shuffle_products`
destroys it: it deals the product of every event at random among all
events (keeping each product's share), so nothing but popularity is left.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from blocks.catalog import Catalog, Product

DIMENSIONS = 6
USER_AGENTS = {
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
}
_PRODUCT_KEYS = ("productId", "category", "tags", "price", "name")


@dataclass(frozen=True, slots=True)
class World:
    """The hidden truth behind the events."""

    products: tuple[Product, ...]
    quality: dict[str, float]
    style: dict[str, tuple[float, ...]]
    complements: dict[str, tuple[str, ...]]
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Shopper:
    """A visitor's hidden taste."""

    visitor_id: str
    taste: dict[str, float]
    preference: tuple[float, ...]
    device: str
    sessions: int
    buyer: float


def make_world(catalog: Catalog, rng: random.Random) -> World:
    """Hidden quality, style and complements for every product of `catalog`."""
    products = tuple(p for p in catalog.products if p.category)
    if len(products) < 10:
        raise ValueError("the generator needs a catalogue of at least 10 categorised products")
    categories = tuple(sorted({p.category for p in products if p.category}))
    quality = {p.sku: math.exp(rng.gauss(0.0, 1.0)) for p in products}
    style = {p.sku: tuple(rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)) for p in products}
    by_category: dict[str, list[Product]] = {}
    for product in products:
        assert product.category is not None
        by_category.setdefault(product.category, []).append(product)
    complements: dict[str, tuple[str, ...]] = {}
    for product in products:
        assert product.category is not None
        kind = product.tags[0] if product.tags else None
        others = [
            p.sku
            for p in by_category[product.category]
            if p.sku != product.sku and (not p.tags or p.tags[0] != kind)
        ]
        complements[product.sku] = tuple(rng.sample(others, min(len(others), rng.randint(1, 3))))
    return World(products, quality, style, complements, categories)


def make_shoppers(
    world: World, count: int, rng: random.Random, *, concentration: float = 0.3, prefix: str = "syn"
) -> list[Shopper]:
    """`count` shoppers with hidden tastes."""
    shoppers = []
    for index in range(count):
        draws = [rng.gammavariate(concentration, 1.0) for _ in world.categories]
        total = sum(draws) or 1.0
        taste = {c: d / total for c, d in zip(world.categories, draws, strict=True)}
        shoppers.append(
            Shopper(
                visitor_id=f"{prefix}-{index:06d}",
                taste=taste,
                preference=tuple(rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)),
                device=rng.choices(("mobile", "desktop", "tablet"), (0.55, 0.35, 0.10))[0],
                sessions=1 + min(12, int(rng.expovariate(1 / 2.5))),
                buyer=rng.betavariate(1.5, 4.0),
            )
        )
    return shoppers


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _product_properties(product: Product) -> dict[str, Any]:
    props: dict[str, Any] = {"productId": product.sku, "price": product.price, "name": product.name}
    if product.category:
        props["category"] = product.category
    if product.tags:
        props["tags"] = list(product.tags[:20])
    return props


class _Session:
    def __init__(self, shopper: Shopper, start: datetime, rng: random.Random) -> None:
        self.shopper = shopper
        self.moment = start
        self.rng = rng
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, page: str, properties: dict[str, Any] | None = None) -> None:
        self.moment += timedelta(seconds=self.rng.uniform(5, 90))
        event: dict[str, Any] = {
            "type": kind,
            "eventId": uuid.UUID(int=self.rng.getrandbits(128)).hex,
            "visitorId": self.shopper.visitor_id,
            "timestamp": _iso(self.moment),
            "context": {"page": page, "userAgent": USER_AGENTS[self.shopper.device]},
        }
        if properties:
            event["properties"] = properties
        self.events.append(event)


def _liking(world: World, shopper: Shopper, product: Product) -> float:
    style = world.style[product.sku]
    affinity = sum(a * b for a, b in zip(style, shopper.preference, strict=True))
    return world.quality[product.sku] * math.exp(0.8 * affinity)


def session_events(
    world: World, shopper: Shopper, start: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """One browsing session of `shopper` from `start`, as `/v1/events` events."""
    session = _Session(shopper, start, rng)
    session.emit("page_view", "/")
    if rng.random() < 0.1:
        category = rng.choice(world.categories)
    else:
        names = list(shopper.taste)
        category = rng.choices(names, [shopper.taste[c] for c in names])[0]
    candidates = [p for p in world.products if p.category == category]
    likings = [_liking(world, shopper, p) for p in candidates]
    top = max(likings)
    views = rng.randint(2, 6)
    cart: dict[str, Product] = {}
    by_sku = {p.sku: p for p in world.products}
    for _ in range(views):
        product = rng.choices(candidates, likings)[0]
        session.emit("page_view", product.url or f"/p/{product.sku}", _product_properties(product))
        # The more they like it (relative to their favourite here), the likelier the cart.
        if (
            product.sku not in cart
            and rng.random() < 0.12 + 0.35 * _liking(world, shopper, product) / top
        ):
            cart[product.sku] = product
            session.emit(
                "add_to_cart", product.url or "/", {**_product_properties(product), "quantity": 1}
            )
            for extra in world.complements.get(product.sku, ()):
                if extra not in cart and rng.random() < 0.45:
                    companion = by_sku[extra]
                    cart[extra] = companion
                    session.emit(
                        "add_to_cart",
                        companion.url or "/",
                        {**_product_properties(companion), "quantity": 1},
                    )
    if cart and rng.random() < 0.25 + 0.6 * shopper.buyer:
        revenue = round(sum(p.price for p in cart.values()), 2)
        session.emit("purchase", "/checkout", {"revenue": revenue, "currency": "USD"})
    return session.events


def generate_events(
    catalog: Catalog,
    *,
    visitors: int,
    days: float = 60.0,
    seed: int = 0,
    end: datetime | None = None,
    concentration: float = 0.3,
    prefix: str = "syn",
) -> list[dict[str, Any]]:
    """Every event of `visitors` shoppers over the `days` before `end`, in time order."""
    rng = random.Random(seed)
    world = make_world(catalog, rng)
    shoppers = make_shoppers(world, visitors, rng, concentration=concentration, prefix=prefix)
    finish = end or datetime.now(UTC).replace(microsecond=0)
    origin = finish - timedelta(days=days)
    events: list[dict[str, Any]] = []
    for shopper in shoppers:
        moment = origin + timedelta(days=rng.uniform(0, days * 0.8))
        for _ in range(shopper.sessions):
            if moment >= finish - timedelta(hours=2):
                break
            events.extend(session_events(world, shopper, moment, rng))
            moment += timedelta(days=rng.expovariate(1 / 6.0), hours=rng.uniform(1, 12))
    events.sort(key=lambda e: e["timestamp"])
    return events


def shuffle_products(events: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """The events with their products dealt out at random (no signal but popularity left)."""
    rng = random.Random(seed)
    bundles = [
        {key: e["properties"][key] for key in _PRODUCT_KEYS if key in e["properties"]}
        for e in events
        if "productId" in (e.get("properties") or {})
    ]
    rng.shuffle(bundles)
    dealt = iter(bundles)
    out = []
    for event in events:
        props = event.get("properties") or {}
        if "productId" in props:
            rest = {k: v for k, v in props.items() if k not in _PRODUCT_KEYS}
            event = {**event, "properties": {**rest, **next(dealt)}}
        out.append(event)
    return out
