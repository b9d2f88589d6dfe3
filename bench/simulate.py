"""Closed-loop simulation: does a model trained from logged exposures beat random choice?

Three audiences (a profile trait) click three equal-priority variants of one
block with known probabilities (scoring.synthetic.GROUND_TRUTH). The simulator
reports the click rate of random choice, of the trained model's policy and of
the oracle (each audience's best variant), and the share of the oracle's lift
the model captured: (model - random) / (oracle - random).

1. Offline (always): exposures in the gateway's exact document shape (one
   page document per page view, here of one block) under a uniform random
   policy (propensity 1/3) and clicks sampled from the ground truth are written
   into a fresh embedded SecantusDB; attribution and training run as in
   production; the model's greedy policy is scored against the truth.
2. End to end (when the serving half, `scoring.serving`, is present): the real
   gateway is driven in-process. Phase 1 serves pages at random
   (`cold_start_epsilon=1.0`) and posts the sampled clicks to `/v1/events`;
   then the model is trained and activated; once pages report its version,
   phase 2 serves again and measures the click rate.

    python bench/simulate.py [--offline-only] [--exposures 6000] [--pages 8000]

The last line is the share captured (end to end when it ran, else offline).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import AsyncMongoClient

from gateway.embedded_mongo import EmbeddedMongo
from scoring.attribution import attribute_outcomes
from scoring.features import candidate_rows
from scoring.registry import ModelRegistry
from scoring.synthetic import (
    BLOCK_ID,
    GROUND_TRUTH,
    PAGE,
    SyntheticVisitor,
    make_visitors,
    oracle_value,
    policy_value,
    random_value,
    synthetic_logs,
)
from scoring.train import train_variant_model

KEY = "simulate-signing-key"
VARIANTS = list(next(iter(GROUND_TRUTH.values())))
BEST = {audience: max(row, key=row.__getitem__) for audience, row in GROUND_TRUTH.items()}


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def captured(model: float, rand: float, oracle: float) -> float:
    return (model - rand) / (oracle - rand)


def _print_table() -> None:
    print("ground truth click probability (audience x variant):")
    print("  " + " " * 10 + "".join(f"{v:>9}" for v in VARIANTS))
    for audience, row in GROUND_TRUTH.items():
        print(f"  {audience:10}" + "".join(f"{row[v]:9.3f}" for v in VARIANTS))


# -- offline ---------------------------------------------------------------------------


async def offline(uri: str, *, exposures: int, visitors: int, seed: int) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client[f"simulate_offline_{uuid.uuid4().hex[:8]}"]
    try:
        people = make_visitors(visitors, seed=seed)
        start = datetime.now(UTC) - timedelta(days=1)
        logged, events = synthetic_logs(
            people, exposures, start=start, seed=seed, spacing=timedelta(seconds=10)
        )
        await db.exposures.insert_many(logged)
        await db.events.insert_many(events)
        until = start + timedelta(seconds=10 * exposures)
        began = time.perf_counter()
        found = await attribute_outcomes(db, since=start, until=until)
        registry = ModelRegistry(db, KEY.encode())
        report = await train_variant_model(db, registry, since=start, until=until, activate=True)
        seconds = time.perf_counter() - began
        loaded = await registry.load_active()
        assert loaded is not None

        def greedy(visitor: SyntheticVisitor) -> str:
            rows = candidate_rows(visitor.snapshot, [(BLOCK_ID, v, []) for v in VARIANTS])
            return VARIANTS[int(loaded.estimator.predict_proba(rows)[:, 1].argmax())]

        model = policy_value(greedy, people)
        rand, oracle = random_value(), oracle_value()
        logged_rate = found.clicked_exposures / found.exposures
        picks = {a: greedy(next(v for v in people if v.audience == a)) for a in GROUND_TRUTH}
        print(
            f"offline: {exposures} logged exposures, {found.clicked_exposures} clicks, "
            f"trained {report.model} ({report.calibration}) in {seconds:.1f} s"
        )
        print(
            f"  validation AUC {report.auc:.3f}, log loss {report.log_loss:.4f}; "
            f"IPS {_figure(report.off_policy.ips)}, SNIPS {_figure(report.off_policy.snips)} "
            f"vs logged {_figure(report.off_policy.logged_rate)}"
        )
        print(f"  greedy picks: {picks} (best: {BEST})")
        print(
            f"  click rate, random policy:  expected {rand:.4f}, logged (sampled) {logged_rate:.4f}"
        )
        print(f"  click rate, model policy:   expected {model:.4f}")
        print(f"  click rate, oracle:         expected {oracle:.4f}")
        share = captured(model, rand, oracle)
        print(f"  offline: captured {share:.1%} of the oracle's lift over random")
        return share
    finally:
        await client.drop_database(db.name)
        await client.close()


# -- end to end ------------------------------------------------------------------------

PAGE_YAML = f"""\
slug: {PAGE}
title: Simulation
locales: [en-US]
blocks:
  - id: {BLOCK_ID}
    type: hero
    variants:
      - id: default
        default: true
        fields: {{heading: Welcome}}
""" + "".join(
    f"""      - id: {variant}
        priority: 5
        tags: [{variant}]
        fields: {{heading: {variant.title()}}}
"""
    for variant in VARIANTS
)

AUDIENCES_YAML = "audiences:\n" + "".join(
    f"  - {{name: {a}, condition: {{'traits.segment': {a}}}}}\n" for a in GROUND_TRUTH
)

QUERY = """
query($slug: String!) {
  page(slug: $slug, locale: "en-US") {
    blocks { blockId variantId decision { variantId reason score propensity modelVersion } }
  }
}
"""
PUBLISHABLE = "pk_simulate"


def serving_half_present() -> bool:
    from gateway.settings import Settings

    return (
        importlib.util.find_spec("scoring.serving") is not None
        and "cold_start_epsilon" in Settings.model_fields
    )


async def _seed(db: Any, people: list[SyntheticVisitor]) -> None:
    from profiles.audiences import AudienceRepository, parse_audience_file

    now = datetime.now(UTC)
    await db.profiles.insert_many(
        [
            {
                "_id": person.visitor_id,
                "version": 1,
                "createdAt": now,
                "traits": {
                    "segment": person.audience,
                    "pageViews": random.Random(person.visitor_id).randint(1, 40),
                },
                "counts": {},
                "cart": {},
                "consent": {"analytics": True, "personalization": True, "source": "default"},
            }
            for person in people
        ]
    )
    documents = parse_audience_file(AUDIENCES_YAML, "simulate")
    await AudienceRepository(db).import_documents(documents, replace_all=True)


class Loop:
    """Serves pages to simulated visitors and posts the clicks they make."""

    def __init__(self, client: Any, people: list[SyntheticVisitor], seed: int) -> None:
        self.client = client
        self.people = people
        self.rng = random.Random(seed)

    async def page(self, visitor: SyntheticVisitor) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": QUERY, "variables": {"slug": PAGE}},
            headers={"X-Visitor-Id": visitor.visitor_id},
        )
        body = response.json()
        if "errors" in body:
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        block: dict[str, Any] = next(
            b for b in body["data"]["page"]["blocks"] if b["blockId"] == BLOCK_ID
        )
        return block

    async def click(self, visitor: SyntheticVisitor, variant: str) -> None:
        event = {
            "type": "click",
            "eventId": uuid.uuid4().hex,
            "visitorId": visitor.visitor_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "blockId": BLOCK_ID,
            "variantId": variant,
        }
        response = await self.client.post(
            "/v1/events", json=[event], headers={"Authorization": f"Bearer {PUBLISHABLE}"}
        )
        response.raise_for_status()

    async def phase(self, pages: int, concurrency: int = 8) -> dict[str, Any]:
        visitors = [self.rng.choice(self.people) for _ in range(pages)]
        draws = [self.rng.random() for _ in range(pages)]
        gate = asyncio.Semaphore(concurrency)
        blocks: list[dict[str, Any]] = [{} for _ in range(pages)]
        locks: dict[str, asyncio.Lock] = {}

        async def serve(index: int) -> None:
            visitor = visitors[index]
            # One page at a time per visitor, and the click right after its page view,
            # as a browser would: attribution then credits the exposure clicked on.
            async with locks.setdefault(visitor.visitor_id, asyncio.Lock()), gate:
                block = blocks[index] = await self.page(visitor)
                if draws[index] < GROUND_TRUTH[visitor.audience].get(block["variantId"], 0):
                    await self.click(visitor, block["variantId"])

        await asyncio.gather(*(serve(i) for i in range(pages)))
        clicks, expected, oracle_sampled = 0, 0.0, 0
        versions: dict[str | None, int] = {}
        for visitor, draw, block in zip(visitors, draws, blocks, strict=True):
            rate = GROUND_TRUTH[visitor.audience].get(block["variantId"], 0.0)
            expected += rate
            clicks += draw < rate
            oracle_sampled += draw < GROUND_TRUTH[visitor.audience][BEST[visitor.audience]]
            model_version = block["decision"].get("modelVersion")
            versions[model_version] = versions.get(model_version, 0) + 1
        return {
            "sampled": clicks / pages,
            "expected": expected / pages,
            "oracle_sampled": oracle_sampled / pages,
            "versions": versions,
        }


async def _wait(predicate: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def end_to_end(
    uri: str, root: Path, *, pages: int, visitors: int, epsilon: float, seed: int
) -> float:
    import httpx
    from asgi_lifespan import LifespanManager

    from gateway.app import create_app
    from gateway.settings import Settings

    content = root / "content"
    (content / "pages").mkdir(parents=True)
    (content / "pages" / f"{PAGE}.yaml").write_text(PAGE_YAML, encoding="utf-8")
    database = f"simulate_e2e_{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate(
        {
            "mongodb_uri": uri,
            "mongodb_database": database,
            "content_dir": content,
            "state_dir": root / "state",
            "seed_demo": False,
            "publishable_keys": PUBLISHABLE,
            "admin_keys": "sk_simulate",
            "response_cache_size": 0,
            "profile_budget_ms": 2000.0,
            "scoring_budget_ms": 2000.0,
            "cold_start_epsilon": 1.0,
            "exploration_epsilon": epsilon,
            "model_poll_seconds": 0.2,
            "model_signing_key": KEY,
            "audience_refresh_seconds": 0.5,
        }
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = mongo[database]
    people = make_visitors(visitors, seed=seed)
    await _seed(db, people)
    registry = ModelRegistry(db, KEY.encode())
    try:
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as http:
                loop = Loop(http, people, seed)
                started = datetime.now(UTC) - timedelta(seconds=1)
                began = time.perf_counter()
                first = await loop.phase(pages)
                print(
                    f"e2e phase 1 (random, cold_start_epsilon=1.0): {pages} pages in "
                    f"{time.perf_counter() - began:.1f} s, click rate {first['sampled']:.4f}"
                )

                async def logged() -> bool:
                    count = await db.exposures.count_documents({"blocks.blockId": BLOCK_ID})
                    return bool(count >= pages)

                await _wait(logged, "phase 1 exposures to be written")
                until = datetime.now(UTC) + timedelta(seconds=1)
                await attribute_outcomes(db, since=started, until=until)
                report = await train_variant_model(
                    db, registry, since=started, until=until, activate=True
                )
                print(
                    f"trained {report.version} ({report.model}): AUC {report.auc:.3f}, "
                    f"IPS {_figure(report.off_policy.ips)} "
                    f"vs logged {_figure(report.off_policy.logged_rate)}"
                )

                async def serving() -> bool:
                    block = await loop.page(people[0])
                    return bool(block["decision"].get("modelVersion") == report.version)

                await _wait(serving, f"the gateway to serve {report.version}")
                second = await loop.phase(pages)
                print(
                    f"e2e phase 2 (model, exploration_epsilon={epsilon}): "
                    f"served by {second['versions']}"
                )
        rand, oracle = random_value(), oracle_value()
        print(
            f"  click rate, random policy:  expected {rand:.4f}, "
            f"served {first['expected']:.4f}, sampled {first['sampled']:.4f}"
        )
        print(
            f"  click rate, model policy:   expected {second['expected']:.4f}, "
            f"sampled {second['sampled']:.4f}"
        )
        print(
            f"  click rate, oracle:         expected {oracle:.4f}, "
            f"sampled {second['oracle_sampled']:.4f}"
        )
        sampled_share = captured(second["sampled"], first["sampled"], second["oracle_sampled"])
        print(f"  sampled: captured {sampled_share:.1%} of the oracle's lift over random")
        return captured(second["expected"], rand, oracle)
    finally:
        await mongo.drop_database(database)
        await mongo.close()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offline-only", action="store_true")
    parser.add_argument("--exposures", type=int, default=6000, help="offline logged exposures")
    parser.add_argument("--pages", type=int, default=8000, help="pages served per e2e phase")
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--epsilon", type=float, default=0.05, help="phase 2 exploration")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    _print_table()
    with tempfile.TemporaryDirectory(prefix="tessera-simulate-") as tmp:
        server = EmbeddedMongo(Path(tmp) / "db")
        await asyncio.to_thread(server.start)
        try:
            share = await offline(
                server.uri, exposures=args.exposures, visitors=args.visitors, seed=args.seed
            )
            if args.offline_only:
                pass
            elif serving_half_present():
                share = await end_to_end(
                    server.uri,
                    Path(tmp),
                    pages=args.pages,
                    visitors=args.visitors,
                    epsilon=args.epsilon,
                    seed=args.seed,
                )
            else:
                print("end to end skipped: the serving half (scoring.serving) is not installed")
        finally:
            await asyncio.to_thread(server.stop)
    print(f"captured {share:.1%} of the oracle's lift over random")
    return 0 if share >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
