"""What scoring costs a page: in-process medians against the same page ranked without a model.

    python bench/score_cost.py [--pages 3000] [--blocks 3]

Fits a sigmoid-calibrated DictVectorizer + logistic regression pipeline (the
shape `python -m gateway train` fits) on synthetic visitors, stores it signed
in a fresh embedded SecantusDB twice, as fitted and in its compact serving
form (`scoring.compact`), and loads each through a real `ModelServer`. A page
has `--blocks` contested blocks of three variants each. For each page it
measures, interleaved so machine noise hits all alike:

- (a) plan + rank without a model (the baseline: priority order);
- (b) the same, scored by `ModelServer.score` with the pipeline as fitted;
- (c) the same, scored with the compact form `train` registers.

It prints the p50/p99 of each in microseconds, the overheads (b-a, c-a) and
the p99 of (c) as a share of the default scoring budget.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, build_context
from blocks.model import Block, Page, Variant
from blocks.selection import plan_page, rank_page
from gateway.embedded_mongo import EmbeddedMongo
from gateway.settings import Settings
from scoring.compact import compact
from scoring.features import candidate_rows, visitor_snapshot
from scoring.registry import VARIANT_MODEL, ModelRegistry
from scoring.serving import ModelServer
from scoring.synthetic import GROUND_TRUTH, make_visitors

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
VARIANTS = tuple(next(iter(GROUND_TRUTH.values())))


def _page(contested: int) -> Page:
    blocks = [
        Block(
            id=f"block-{index}",
            type="hero",
            variants=(
                Variant(id="default", fields={"heading": "hi"}, default=True),
                *(Variant(id=v, fields={"heading": v}, tags=(f"tone-{v}",)) for v in VARIANTS),
            ),
        )
        for index in range(contested)
    ]
    plain = [
        Block(id=f"plain-{i}", type="rich_text", variants=(Variant(id="only", fields={}),))
        for i in range(10 - contested)
    ]
    return Page(slug="bench", title="Bench", blocks=(*blocks, *plain))


def _fit(seed: int) -> Any:
    rng = random.Random(seed)
    rows, labels = [], []
    for visitor in make_visitors(600, seed=seed):
        for variant in VARIANTS:
            rows.extend(candidate_rows(visitor.snapshot, [("block-0", variant, ())]))
            labels.append(int(rng.random() < GROUND_TRUTH[visitor.audience][variant] * 4))
    pipeline = Pipeline(
        [("vectorize", DictVectorizer()), ("model", LogisticRegression(max_iter=500))]
    )
    return CalibratedClassifierCV(pipeline, method="sigmoid", cv=3).fit(rows, labels)


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


async def main(args: argparse.Namespace) -> int:
    page = _page(args.blocks)
    estimator = _fit(args.seed)
    budget = Settings().scoring_budget
    with tempfile.TemporaryDirectory() as tmp, EmbeddedMongo(Path(tmp) / "db") as server:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
        scorers: dict[str, ModelServer] = {}
        for scenario, form in (("b", estimator), ("c", compact(estimator))):
            registry = ModelRegistry(client[f"bench_{scenario}"], b"bench-key")
            info = await registry.save(form, kind=VARIANT_MODEL, metrics={}, features=[], window={})
            await registry.activate(info.version)
            scorers[scenario] = ModelServer(registry, budget=budget, poll_seconds=3600)
            await scorers[scenario].start()
        try:
            timings: dict[str, list[float]] = {"a": [], "b": [], "c": []}
            outcomes: dict[str, dict[str, int]] = {"b": {}, "c": {}}
            rng = random.Random(args.seed)
            visitors = make_visitors(200, seed=args.seed + 1)
            for index in range(args.pages):
                visitor = visitors[index % len(visitors)]
                context = build_context(
                    request=RequestFacts(visitor_id=visitor.visitor_id, device="mobile"),
                    profile={"traits": {"pageViews": 4}},
                    audiences=AudienceSet(()),
                    now=NOW,
                    locale=None,
                )
                for scenario in ("a", "b", "c"):
                    started = time.perf_counter()
                    plan = plan_page(page, context)
                    scores = None
                    if scenario != "a":
                        result = await scorers[scenario].score(plan, visitor_snapshot(context))
                        seen = outcomes[scenario]
                        seen[result.outcome] = seen.get(result.outcome, 0) + 1
                        scores = result.scores
                    rank_page(plan, scores, epsilon=0.1, rng=rng)
                    timings[scenario].append((time.perf_counter() - started) * 1e6)
        finally:
            for scorer in scorers.values():
                await scorer.aclose()
            await client.close()
    a50, _ = _quantiles(timings["a"])
    print(f"{args.pages} pages, {args.blocks} contested block(s) of {len(VARIANTS)} variants")
    print(f"{'scenario':44} {'p50 µs':>9} {'p99 µs':>9}")
    names = {
        "a": "(a) plan + rank, no model",
        "b": "(b) scored, calibrated pipeline as fitted",
        "c": "(c) scored, compact serving form",
    }
    for key, name in names.items():
        p50, p99 = _quantiles(timings[key])
        print(f"{name:44} {p50:9.0f} {p99:9.0f}")
    b50 = _quantiles(timings["b"])[0]
    c50, c99 = _quantiles(timings["c"])
    print(f"outcomes: {outcomes}")
    print(f"scoring overhead p50: as fitted {b50 - a50:.0f} µs, compact {c50 - a50:.0f} µs")
    print(f"compact/as-fitted overhead ratio {(c50 - a50) / (b50 - a50):.2f}")
    print(
        f"served scoring p99 {c99 / 1000:.2f} ms = {c99 / (budget * 1e6):.0%} "
        f"of the {budget * 1000:.0f} ms budget"
    )
    return 0 if outcomes["c"].get("scored", 0) >= args.pages * 0.99 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--blocks", type=int, default=3, help="contested blocks per page")
    parser.add_argument("--seed", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
