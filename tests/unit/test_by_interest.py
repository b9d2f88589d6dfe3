"""The fallback of a personalized recommendations block: the visitor's categories first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blocks.context import TargetingContext
from cms_adapters.catalog_cache import CatalogCache
from cms_adapters.filesystem import FilesystemAdapter
from delivery.recommendations import Owned, Recommendations, _by_interest
from gateway.settings import DEMO_CONTENT_DIR

NOBODY = Owned(history=(), viewed=(), cart=(), bought=())


def _context(interests: dict[str, float]) -> TargetingContext:
    return TargetingContext(
        attributes={"interests": interests},
        audiences=frozenset(),
        now=datetime(2026, 12, 1, tzinfo=UTC),
        locale=None,
    )


@pytest.fixture
async def recs() -> Recommendations:
    catalog = CatalogCache(FilesystemAdapter(DEMO_CONTENT_DIR), refresh=3600)
    assert await catalog.refresh() is not None
    return Recommendations(catalog=catalog)


async def test_tied_categories_interleave_and_the_catalogue_fills_the_rest(
    recs: Recommendations,
) -> None:
    catalog = recs.products
    assert catalog is not None
    category = {p.sku: p.category for p in catalog.products}
    liked = [p.sku for p in catalog.products if p.category in ("climbing", "running")]
    others = [p.sku for p in catalog.products if p.category not in ("climbing", "running")]
    excluded = frozenset(liked[:2])
    tied = _context({"climbing": 2.0, "running": 2.0})

    items, personal = _by_interest(recs, tied, NOBODY, 5, excluded)
    # No ranking yet: equally liked categories in catalogue order, excluded products left out.
    assert personal is True
    assert items == liked[2:7]

    items, _ = _by_interest(recs, tied, NOBODY, len(liked) + 3, excluded)
    assert items == liked[2:] + others[:5]
    assert len(set(items)) == len(items)

    stronger = _context({"climbing": 1.0, "running": 3.0})
    items, _ = _by_interest(recs, stronger, NOBODY, 8, frozenset())
    running = [sku for sku in liked if category[sku] == "running"]
    assert items == running[:8]


async def test_without_interests_the_order_is_not_personal(recs: Recommendations) -> None:
    catalog = recs.products
    assert catalog is not None
    items, personal = _by_interest(recs, _context({}), NOBODY, 4, frozenset())
    assert personal is False
    assert items == list(catalog.skus[:4])
