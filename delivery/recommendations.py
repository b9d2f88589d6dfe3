"""Filling `recommendations` blocks: the products each chosen variant asks for.

After a page's variants are chosen, every recommendations block gets its
products (`blocks.recommendations` says what each strategy reads):

- `personalized`: the hybrid model over the visitor's history (recently
  viewed, cart, purchases from the profile); a visitor without history gets
  popularity;
- `similar` / `frequently-bought-together`: the model's neighbours of the
  block's product, or of the page's product (`context.path` is its `url`),
  or, for "bought together" without one, of the cart;
- `trending`: the trending ranking (recent events), else the model's popularity;
- `recently-viewed`: the profile's recently viewed products.

The model is asked once per page, in the scoring threads, within what the
page's variant scoring left of the scoring budget. When it is slow, fails or
none is active, the block falls back (source `fallback:timeout`,
`fallback:error`, `fallback:no-model`): a personalized block to the trending
products of the categories the visitor is interested in (their decayed
interests, then the categories they viewed), others to trending products.
Products leave out what the visitor bought or has in the cart when the block
excludes owned products, and anything missing from the live catalogue. What
each block showed is returned for the exposure log.

The block's scope follows what it read (`blocks.recommendations`): a block
that read this visitor's history or interests is `individual`; one that read
only that the visitor has no history yet is `audience` (edge fact `history`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from blocks.catalog import Catalog
from blocks.context import TargetingContext
from blocks.model import Page
from blocks.recommendations import (
    BLOCK_TYPE,
    HISTORY_FACT,
    PERSONALIZED,
    RECENTLY_VIEWED,
    SIMILAR,
    TRENDING,
    RecommendationSpec,
    has_history,
    recommendation_spec,
)
from blocks.selection import CONSENT_FACT, PageDecision, strictest
from blocks.templating import RenderedFields
from cms_adapters.catalog_cache import CatalogCache
from scoring.recommendations.interactions import CART, PURCHASE, VIEW, WEIGHTS
from scoring.recommendations.serving import (
    MODEL_STRATEGIES,
    Answer,
    Ask,
    RecommendationServer,
)
from scoring.recommendations.trending import TrendingService

#: Extra products asked of the model, for those the live catalogue may no longer have.
_SPARE = 4


@dataclass(slots=True)
class Recommendations:
    """What recommendations blocks are served from (each part optional)."""

    server: RecommendationServer | None = None
    catalog: CatalogCache | None = None
    trending: TrendingService | None = None
    #: The catalogue by category in ranking order, rebuilt when either changes.
    index: _CategoryIndex | None = field(default=None, repr=False)

    @property
    def products(self) -> Catalog | None:
        """The live catalogue, if one has been read."""
        return None if self.catalog is None else self.catalog.current


@dataclass(frozen=True, slots=True)
class Owned:
    """What the visitor's profile says about products."""

    #: `(product, weight, when)` for the model.
    history: tuple[tuple[str, float, datetime], ...]
    viewed: tuple[str, ...]
    cart: tuple[str, ...]
    bought: tuple[str, ...]

    @property
    def owned(self) -> frozenset[str]:
        """Products bought or in the cart."""
        return frozenset(self.cart) | frozenset(self.bought)


def _moment(value: Any, default: datetime) -> datetime:
    if not isinstance(value, datetime):
        return default
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _products(items: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("productId"), str):
            out.append((item["productId"], item.get("at")))
    return out


def owned_products(profile: Mapping[str, Any] | None, now: datetime) -> Owned:
    """The visitor's touches and owned products, from their profile."""
    profile = profile or {}
    viewed = _products(profile.get("recentlyViewed"))
    cart_doc = profile.get("cart") if isinstance(profile.get("cart"), Mapping) else {}
    assert isinstance(cart_doc, Mapping)
    cart_at = _moment(cart_doc.get("updatedAt"), now)
    cart = [product for product, _ in _products(cart_doc.get("lines"))]
    bought = _products(profile.get("purchased"))
    history = [
        *((product, WEIGHTS[VIEW], _moment(at, now)) for product, at in viewed),
        *((product, WEIGHTS[CART], cart_at) for product in cart),
        *((product, WEIGHTS[PURCHASE], _moment(at, now)) for product, at in bought),
    ]
    return Owned(
        history=tuple(history),
        viewed=tuple(product for product, _ in viewed),
        cart=tuple(cart),
        bought=tuple(product for product, _ in bought),
    )


@dataclass(frozen=True, slots=True)
class Filled:
    """A page's decisions and fields with its recommendations blocks filled in."""

    decision: PageDecision
    rendered: tuple[RenderedFields, ...]
    #: Block id → what it showed (strategy, source, items, model version), for exposures.
    shown: Mapping[str, Mapping[str, Any]]


def _ask(spec: RecommendationSpec, owned: Owned, exclude: frozenset[str]) -> Ask:
    return Ask(
        strategy=spec.strategy,
        limit=spec.limit + _SPARE,
        anchor=spec.anchor,
        history=owned.history if spec.reads_visitor else (),
        exclude=exclude,
        basket=owned.cart,
    )


def _trending(recs: Recommendations, k: int, exclude: frozenset[str]) -> list[str]:
    """The `k` most trending products; then the model's most popular, then the catalogue's.

    A few events trend only a few products: the block is filled after them rather
    than left short (a new shop, no model: the catalogue's own order).
    """
    found = [] if recs.trending is None else recs.trending.top(k, exclude)
    if len(found) >= k:
        return found
    model = None if recs.server is None else recs.server.recommender
    if model is not None:
        found += model.popular(k - len(found), exclude | frozenset(found))
    if len(found) < k and recs.products is not None:
        taken = exclude | frozenset(found)
        found += [p.sku for p in recs.products.products if p.sku not in taken][: k - len(found)]
    return found


def _interests(
    context: TargetingContext, catalog: Catalog | None, owned: Owned
) -> dict[str, float]:
    """The visitor's interest per category: decayed interests, else the categories viewed."""
    raw = context.attributes.get("interests")
    scores = {
        str(k): float(v)
        for k, v in (raw.items() if isinstance(raw, Mapping) else ())
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    }
    if not scores and catalog is not None:
        for product_id in owned.viewed:
            product = catalog.get(product_id)
            if product is not None and product.category:
                scores[product.category] = scores.get(product.category, 0.0) + 1.0
    return scores


@dataclass(frozen=True, slots=True)
class _CategoryIndex:
    """A catalogue's products by category, in ranking order (built once per ranking)."""

    catalog: Catalog
    #: What the ranking came from (the trending tuple or the model): identity is the key.
    source: object
    ranked: tuple[str, ...]
    #: Each catalogue product's place: by rank, then (unranked) in catalogue order.
    order: Mapping[str, int]
    category: Mapping[str, str | None]
    by_category: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, catalog: Catalog, source: object, ranked: Sequence[str]) -> _CategoryIndex:
        """Index `catalog` by category; products `ranked` does not list come last."""
        rank = {sku: position for position, sku in enumerate(ranked)}
        # Stable: unranked products keep their catalogue order.
        products = sorted(catalog.products, key=lambda p: rank.get(p.sku, len(rank)))
        by_category: dict[str, list[str]] = {}
        for product in products:
            if product.category is not None:
                by_category.setdefault(product.category, []).append(product.sku)
        return cls(
            catalog=catalog,
            source=source,
            # Then what the ranking does not list, so a block is filled while the catalogue lasts.
            ranked=(*ranked, *(p.sku for p in products if p.sku not in rank)),
            order={product.sku: position for position, product in enumerate(products)},
            category={p.sku: p.category for p in catalog.products},
            by_category={name: tuple(skus) for name, skus in by_category.items()},
        )


def _category_index(recs: Recommendations, catalog: Catalog) -> _CategoryIndex:
    """The index of the current catalogue and trending ranking (or model popularity)."""
    model = None if recs.server is None else recs.server.recommender
    trending = recs.trending.ranking if recs.trending is not None else ()
    source: object = trending or model
    index = recs.index
    if index is None or index.catalog is not catalog or index.source is not source:
        if trending:
            ranked: Sequence[str] = trending
        elif model is not None:
            ranked = model.popular(len(catalog))
        else:
            ranked = ()
        index = recs.index = _CategoryIndex.build(catalog, source, ranked)
    return index


def _by_interest(
    recs: Recommendations,
    context: TargetingContext,
    owned: Owned,
    k: int,
    exclude: frozenset[str],
) -> tuple[list[str], bool]:
    """Trending products of the visitor's favourite categories first (no model needed).

    The flag says whether the visitor's interests decided the order.
    """
    catalog = recs.products
    scores = _interests(context, catalog, owned)
    if not scores or catalog is None:
        return _trending(recs, k, exclude), False
    # Per request only the visitor's categories are walked, from an index built
    # once per catalogue and ranking: sorting the whole catalogue for every page
    # cost more than deciding the page's variants.
    index = _category_index(recs, catalog)
    out: list[str] = []
    levels: dict[float, list[str]] = {}
    for name, score in scores.items():
        levels.setdefault(score, []).append(name)
    for score in sorted(levels, reverse=True):
        lists = [index.by_category.get(name, ()) for name in levels[score]]
        # Equally interesting categories interleave by rank.
        merged = lists[0] if len(lists) == 1 else heapq.merge(*lists, key=index.order.__getitem__)
        for sku in merged:
            if sku not in exclude:
                out.append(sku)
                if len(out) >= k:
                    return out, True
    for sku in index.ranked:
        if sku not in exclude and index.category.get(sku) not in scores:
            out.append(sku)
            if len(out) >= k:
                break
    return out, True


async def fill_recommendations(
    recs: Recommendations | None,
    page: Page,
    decision: PageDecision,
    rendered: Sequence[RenderedFields],
    context: TargetingContext,
    profile: Mapping[str, Any] | None,
    *,
    path: str | None,
    now: datetime,
    spent: float = 0.0,
) -> Filled:
    """Fill every recommendations block of the page (see the module docstring)."""
    blocks = [(index, block) for index, block in enumerate(page.blocks) if block.type == BLOCK_TYPE]
    if not blocks:
        return Filled(decision, tuple(rendered), {})
    recs = recs or Recommendations()
    catalog = recs.products
    page_product = catalog.by_url(path) if catalog is not None else None
    owned = owned_products(profile if context.profile_available else None, now)
    history = has_history(context.attributes)
    specs = {
        index: recommendation_spec(
            block.id, rendered[index].fields, page_product.sku if page_product else None
        )
        for index, block in blocks
    }
    # A product page never recommends the product it shows (whatever the strategy).
    shown_here = frozenset({page_product.sku}) if page_product is not None else frozenset()
    excluded = {
        index: (owned.owned if spec.exclude_owned else frozenset())
        | (frozenset({spec.anchor}) if spec.anchor else frozenset())
        | shown_here
        for index, spec in specs.items()
    }
    asked = [index for index, spec in specs.items() if spec.strategy in MODEL_STRATEGIES]
    answers: dict[int, Answer] = {}
    version: str | None = None
    fallback = ""
    if asked:
        if recs.server is None:
            fallback = "fallback:no-model"
        else:
            # One scoring budget per page: what ranking its variants left of it.
            result = await recs.server.recommend(
                [_ask(specs[i], owned, excluded[i]) for i in asked],
                now,
                budget=recs.server.budget - spent,
            )
            version = result.version
            if result.answers is None:
                fallback = "fallback:" + result.outcome.replace("_", "-")
            else:
                answers = dict(zip(asked, result.answers, strict=True))
    decisions = list(decision.decisions)
    fields = list(rendered)
    shown: dict[str, dict[str, Any]] = {}
    for index, block in blocks:
        spec = specs[index]
        exclude = excluded[index]
        source = ""
        items: list[str] = []
        # Whether this block read what this visitor alone has (history, interests).
        personal = history
        if spec.strategy == RECENTLY_VIEWED:
            items = [p for p in owned.viewed if p not in exclude]
            source = "profile"
        elif spec.strategy == TRENDING:
            items = _trending(recs, spec.limit + _SPARE, exclude)
            source = TRENDING
        else:
            found = answers.get(index)
            if found is not None and found.items:
                items, source = list(found.items), found.source
            elif spec.strategy == PERSONALIZED and fallback:
                items, by_interest = _by_interest(
                    recs, context, owned, spec.limit + _SPARE, exclude
                )
                personal = personal or by_interest
                source = fallback
            else:
                items = _trending(recs, spec.limit + _SPARE, exclude)
                # The model had nothing: no product to start from, or nothing near it.
                no_product = spec.strategy == SIMILAR and spec.anchor is None
                source = fallback or ("fallback:no-product" if no_product else "fallback:empty")
        tiles = []
        kept: list[str] = []
        for product_id in items:
            product = catalog.get(product_id) if catalog is not None else None
            if product is None or product_id in kept:
                continue
            kept.append(product_id)
            tiles.append(product.tile())
            if len(kept) >= spec.limit:
                break
        model_version = version if spec.strategy in MODEL_STRATEGIES else None
        base = fields[index]
        fields[index] = replace(
            base,
            fields={
                **base.fields,
                "products": tiles,
                "source": source,
                "modelVersion": model_version,
            },
            # Computed per request: the response cache keys on them like rendered templates,
            # by what they were made of (encoding every tile for the key cost more).
            templated=True,
            key=(
                base.identity() if base.templated else None,
                None if catalog is None else catalog.fingerprint,
                tuple(kept),
                source,
                model_version,
            ),
        )
        record = decisions[index]
        read = spec.scope(personal)
        scope = strictest((record.scope, read))
        facts = record.facts
        if read == "audience":
            # Only that there is no history yet: shared by every such visitor (edge fact).
            facts = facts | {HISTORY_FACT, CONSENT_FACT}
        decisions[index] = replace(
            record, scope=scope, facts=facts if scope == "audience" else frozenset()
        )
        shown[block.id] = {
            "strategy": spec.strategy,
            "source": source,
            "items": kept,
            "modelVersion": model_version,
        }
    return Filled(replace(decision, decisions=tuple(decisions)), tuple(fields), shown)
