"""Offline evaluation: the metrics by hand, and the proofs on generated and shuffled events."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blocks.catalog import Catalog, Product
from cms_adapters.filesystem import FilesystemAdapter
from gateway.settings import DEMO_CONTENT_DIR
from scoring.errors import NotEnoughData
from scoring.recommendations.evaluation import Evaluation, evaluate, time_split
from scoring.recommendations.interactions import VIEW, Interaction, interactions, read_events
from scoring.recommendations.models import MODELS
from scoring.recommendations.synthetic import generate_events, shuffle_products

END = datetime(2026, 11, 1, tzinfo=UTC)


def _touch(visitor: str, item: str, minute: int) -> Interaction:
    return Interaction(visitor, item, VIEW, END + timedelta(minutes=minute))


def test_the_metrics_by_hand() -> None:
    catalog = Catalog(
        products=tuple(Product(sku=s, name=s, price=1.0, category="c") for s in "ABCD"),
        source="test",
    )
    touches = [
        _touch("u1", "A", 0),
        _touch("u2", "A", 1),
        _touch("u2", "B", 2),
        _touch("u3", "A", 3),
        _touch("u3", "B", 4),
        _touch("u3", "C", 5),
        _touch("u1", "B", 6),  # after the split: u1 goes on to B
    ]
    train, test, moment = time_split(touches, 0.1)
    assert (len(train), len(test), moment) == (6, 1, END + timedelta(minutes=6))
    result = evaluate(touches, catalog, test_fraction=0.1, min_visitors=1)
    assert result.test_visitors == 1
    popularity = result.models["popularity"]
    # u1 knows A; popularity ranks B (2 visitors) then C (1); D was never touched.
    assert popularity.precision == pytest.approx(0.1)
    assert popularity.recall == pytest.approx(1.0)
    assert popularity.ndcg == pytest.approx(1.0)
    assert popularity.coverage == pytest.approx(0.5)
    assert popularity.novelty == pytest.approx((-math.log2(2 / 3) - math.log2(1 / 3)) / 2)
    assert set(result.models) == set(MODELS)
    with pytest.raises(NotEnoughData, match="at least 5 are needed"):
        evaluate(touches, catalog, test_fraction=0.1)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    import asyncio

    return asyncio.run(FilesystemAdapter(DEMO_CONTENT_DIR).fetch_catalog())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Path:
    events = generate_events(catalog, visitors=2500, days=60, seed=7, end=END)
    path = tmp_path_factory.mktemp("events") / "generated.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _evaluate(path: Path, catalog: Catalog) -> Evaluation:
    found = read_events(path)
    assert found.problems == []  # every generated event is a valid /v1/events event
    return evaluate(interactions(found.events), catalog)


def test_the_hybrid_beats_popularity_by_20_percent_on_generated_events(
    generated: Path, catalog: Catalog
) -> None:
    result = _evaluate(generated, catalog)
    hybrid, popularity = result.models["hybrid"], result.models["popularity"]
    assert result.test_visitors >= 300
    assert hybrid.ndcg >= 1.2 * popularity.ndcg, result.format()
    # Far beyond noise: the paired per-visitor difference is many standard errors.
    mean, error = result.paired_difference()
    assert mean > 4 * error, result.format()
    # Personalized models cover the catalogue; popularity shows the same few products.
    assert hybrid.coverage > 3 * popularity.coverage
    assert hybrid.novelty > popularity.novelty
    assert result.models["item-cf"].ndcg > popularity.ndcg


def test_on_shuffled_events_the_hybrid_does_not_beat_popularity_beyond_noise(
    generated: Path, catalog: Catalog, tmp_path: Path
) -> None:
    events = [json.loads(line) for line in generated.read_text(encoding="utf-8").splitlines()]
    shuffled = tmp_path / "shuffled.ndjson"
    shuffled.write_text(
        "".join(json.dumps(e) + "\n" for e in shuffle_products(events, seed=3)), encoding="utf-8"
    )
    result = _evaluate(shuffled, catalog)
    mean, error = result.paired_difference()
    # No signal but popularity: any edge of the hybrid stays within two standard errors.
    assert mean <= 2 * error, result.format()
    assert result.lift() < 0.2
