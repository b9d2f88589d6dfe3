"""Send demo traffic to a running gateway, so the model loop can be tried on the demo.

    PUBLISHABLE_KEYS=pk_demo COLD_START_EPSILON=1 python -m gateway serve &
    python scripts/demo_traffic.py --visitors 600          # serve, click
    python -m gateway train --activate                     # learn, ship
    python scripts/demo_traffic.py --visitors 300          # served by the model now

Each synthetic visitor sends three page views (which makes them `returning`),
opens the `sale` page on a phone or a desktop, and clicks the `sale-cta`
block with a hidden preference: phones answer the countdown, desktops the
savings message. It prints which variants were served, their click rates and
the model versions that chose them.

The `sale-hero` block runs the experiment `sale-hero-headline`: each visitor
the gateway enrolls sends the `block_view` beacon a frontend sends (the arm
from `decision { experiment variation }`), sometimes clicks the hero, and
buys with a hidden rate per arm (the deadline headline sells better). Then:

    python -m gateway experiments report sale-hero-headline

Each visitor also browses the catalogue as a shopper with a hidden taste
(`scoring.recommendations.synthetic`): one or two sessions of product views,
carts and sometimes a purchase, on their device. That is what segments and
recommendations learn from:

    python -m gateway segments train --activate
    python -m gateway recommendations train --activate
    curl ... '{ visitor { segment { id label } } }'     # with X-Visitor-Id: demo-traffic-...

(`--no-browse` sends only the sale-page traffic.)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR
from scoring.recommendations.synthetic import World, make_shoppers, make_world, session_events

BLOCK = "sale-cta"
HERO = "sale-hero"
EXPERIMENT = "sale-hero-headline"
#: The hidden purchase and hero-click rates of each arm of the experiment.
BUY = {"default": 0.05, "deadline": 0.08}
HERO_CLICK = {"default": 0.10, "deadline": 0.12}
#: The hidden click probability of each variant, by device.
PREFERENCES = {
    "MOBILE": {"alerts-plain": 0.03, "alerts-countdown": 0.15, "alerts-savings": 0.04},
    "DESKTOP": {"alerts-plain": 0.04, "alerts-countdown": 0.03, "alerts-savings": 0.13},
}
QUERY = """query($context: RequestContextInput) { page(slug: "sale", context: $context) {
  blocks { blockId variantId
    decision { reason score propensity modelVersion experiment variation } }
} }"""


def _event(kind: str, visitor: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "eventId": uuid.uuid4().hex, "visitorId": visitor, **fields}


def experiment_events(
    visitor: str, hero: dict[str, object], rng: random.Random
) -> tuple[list[dict[str, object]], str | None, bool]:
    """A frontend's beacon, and maybe a hero click and a purchase, for an enrolled visitor."""
    decision = hero["decision"]
    assert isinstance(decision, dict)
    if decision.get("experiment") != EXPERIMENT or decision.get("reason") != "experiment":
        return [], None, False
    arm = str(hero["variantId"])
    events = [
        _event(
            "block_view",
            visitor,
            blockId=HERO,
            variantId=arm,
            properties={"experiment": EXPERIMENT, "variation": decision["variation"]},
        )
    ]
    if rng.random() < HERO_CLICK[arm]:
        events.append(_event("click", visitor, blockId=HERO, variantId=arm))
    bought = rng.random() < BUY[arm]
    if bought:
        revenue = round(rng.uniform(40, 160), 2)
        events.append(_event("purchase", visitor, properties={"revenue": revenue}))
    return events, arm, bought


def browsing(
    world: World, visitor: str, device: str, rng: random.Random
) -> list[dict[str, object]]:
    """One or two shopping sessions of a shopper with a hidden taste, stamped by the gateway."""
    shopper = make_shoppers(world, 1, rng, prefix="unused")[0]
    shopper = replace(shopper, visitor_id=visitor, device=device.lower())
    events: list[dict[str, object]] = []
    for _ in range(rng.randint(1, 2)):
        events.extend(session_events(world, shopper, datetime.now(UTC), rng))
    for event in events:
        del event["timestamp"]  # now: the gateway's clock (events are kept in order)
        event["eventId"] = uuid.uuid4().hex  # fresh ids: a rerun with the same seed is new data
    return events


async def visit(
    client: httpx.AsyncClient, key: str, rng: random.Random, world: World | None = None
) -> tuple[str, str, bool, str, str | None, bool]:
    """One visitor: three page views, the sale page, maybe a click (and the experiment's)."""
    visitor = f"demo-traffic-{uuid.uuid4().hex[:12]}"
    auth = {"Authorization": f"Bearer {key}"}
    views = [
        {"type": "page_view", "eventId": uuid.uuid4().hex, "visitorId": visitor} for _ in range(3)
    ]
    (await client.post("/v1/events", json=views, headers=auth)).raise_for_status()
    device = rng.choice(("MOBILE", "DESKTOP"))
    response = await client.post(
        "/graphql",
        json={"query": QUERY, "variables": {"context": {"device": device}}},
        headers={"X-Visitor-Id": visitor},
    )
    response.raise_for_status()
    blocks = response.json()["data"]["page"]["blocks"]
    block = next(b for b in blocks if b["blockId"] == BLOCK)
    variant = block["variantId"]
    clicked = rng.random() < PREFERENCES[device].get(variant, 0.0)
    events, arm, bought = experiment_events(
        visitor, next(b for b in blocks if b["blockId"] == HERO), rng
    )
    if clicked:
        events.append(_event("click", visitor, blockId=BLOCK, variantId=variant))
    if world is not None:
        events.extend(browsing(world, visitor, device, rng))
    if events:
        (await client.post("/v1/events", json=events, headers=auth)).raise_for_status()
    model = block["decision"]["modelVersion"] or "no model"
    return device, variant, clicked, model, arm, bought


async def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    world = None
    if args.browse:
        catalog = await FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog()
        world = make_world(catalog, random.Random(args.seed))
    served: Counter[tuple[str, str]] = Counter()
    clicks: Counter[tuple[str, str]] = Counter()
    models: Counter[str] = Counter()
    arms: Counter[str] = Counter()
    buyers: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=args.url, timeout=10) as client:
        for _ in range(args.visitors):
            device, variant, clicked, model, arm, bought = await visit(client, args.key, rng, world)
            served[device, variant] += 1
            clicks[device, variant] += clicked
            models[model] += 1
            if arm is not None:
                arms[arm] += 1
                buyers[arm] += bought
    for device, variant in sorted(served):
        n = served[device, variant]
        print(f"{device:8} {variant:18} served {n:5}  clicked {clicks[device, variant] / n:.3f}")
    total = sum(clicks.values()) / max(1, sum(served.values()))
    print(f"click rate {total:.3f}; chosen by {dict(models)}")
    for arm in sorted(arms):
        print(f"{EXPERIMENT} {arm:9} enrolled {arms[arm]:5}  bought {buyers[arm] / arms[arm]:.3f}")
    if arms:
        print(f"report: python -m gateway experiments report {EXPERIMENT}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default="pk_demo", help="a publishable key of the gateway")
    parser.add_argument("--visitors", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--browse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also browse and buy catalogue products (what segments and recommendations learn)",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
