"""What one page's recommendations cost the scoring threads, against `SCORING_BUDGET_MS`.

    python bench/recommendations_cost.py [--products 217] [--visitors 3000]

Fits the models on synthetic shoppers (`scoring.recommendations.synthetic`)
over the demo catalogue, or over a larger generated one (`--products N`),
then times `serving.answer` (what the scoring threads run) for a visitor with
a 20-product history (personalized), a product (similar, bought together),
and a personalized answer for a visitor without history. Prints the median
and 99th percentile per call, the fit time and the artifact's size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
from datetime import UTC, datetime

import joblib

from blocks.catalog import Catalog, Product
from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR
from profiles.validation import Event, parse_event
from scoring.recommendations.interactions import interactions
from scoring.recommendations.models import fit
from scoring.recommendations.serving import Ask, answer
from scoring.recommendations.synthetic import generate_events

END = datetime(2026, 11, 1, tzinfo=UTC)


def _catalog(products: int) -> Catalog:
    if products <= 217:
        return asyncio.run(FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog())
    rng = random.Random(5)
    categories = [f"cat{i}" for i in range(max(8, products // 200))]
    return Catalog(
        products=tuple(
            Product(
                sku=f"P{i:06d}",
                name=f"Product {i} {rng.choice(['light', 'pro', 'trail', 'max'])}",
                price=float(rng.randint(5, 500)),
                category=rng.choice(categories),
                tags=(rng.choice(["a", "b", "c", "d"]), rng.choice(["x", "y", "z"])),
            )
            for i in range(products)
        ),
        source="bench",
    )


def _time(call: object, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=217)
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    catalog = _catalog(args.products)
    raw = generate_events(catalog, visitors=args.visitors, days=60, seed=3, end=END)
    events = []
    for index, item in enumerate(raw):
        parsed = parse_event(item, index, now=END, max_skew=END - datetime(2000, 1, 1, tzinfo=UTC))
        assert isinstance(parsed, Event)
        events.append(parsed)
    touches = interactions(events)
    started = time.perf_counter()
    model = fit(touches, catalog, now=END)
    fitted = time.perf_counter() - started
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    print(
        f"{len(catalog)} products, {len(touches)} touches by {args.visitors} visitors: "
        f"fit {fitted:.1f} s, artifact {len(buffer.getvalue()) / 1024:.0f} KiB"
    )
    history = tuple((touch.item, touch.weight, touch.at) for touch in touches[-20:])
    anchor = touches[-1].item
    cases = {
        "personalized, 20 touches": Ask("personalized", 10, history=history),
        "personalized, no history": Ask("personalized", 10),
        "similar": Ask("similar", 10, anchor=anchor),
        "bought together": Ask("frequently-bought-together", 10, anchor=anchor),
    }
    for name, ask in cases.items():
        median, p99 = _time(lambda ask=ask: answer(model, ask, END), args.repeats)
        print(f"  {name:26} median {median:.3f} ms   p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
