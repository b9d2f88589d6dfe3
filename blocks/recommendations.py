"""What a `recommendations` block asks for, and what serving it reads (pure).

Editors place the block with a strategy (`blocks.block_types.RecommendationsFields`);
the gateway fills in the products when the page is served. What the block
reads decides who may share the page, as for any decision:

| strategy | reads | scope |
|---|---|---|
| `trending` | recent popularity | `public` |
| `similar` | the product given (`productId`) or the page's product (`context.path`) | `public` |
| `frequently-bought-together` with a product | the same | `public` |
| `frequently-bought-together` without one | the visitor's cart | `individual` |
| `personalized` | the visitor's history | `individual` |
| `recently-viewed` | the visitor's history | `individual` |

`excludeOwned` (leave out what the visitor bought or has in the cart) reads
the visitor too: it is on by default for the strategies that read the
visitor anyway, off for the shared ones, and turning it on there makes the
block `individual`.

A block that reads the visitor, shown to a visitor with no product history
yet (nothing viewed, in the cart or bought: every first visit), shows what
every such visitor sees (popular products, an empty recently-viewed list): it
read only that there is no history, an edge fact (`history`), so the page
stays shareable under the visitor's edge key, scope `audience`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from blocks.selection import Scope

BLOCK_TYPE: Final = "recommendations"
PERSONALIZED: Final = "personalized"
SIMILAR: Final = "similar"
TRENDING: Final = "trending"
RECENTLY_VIEWED: Final = "recently-viewed"
BOUGHT_TOGETHER: Final = "frequently-bought-together"
#: Strategies whose products are the same for everyone (given the page and its path).
SHARED_STRATEGIES: Final = frozenset({TRENDING, SIMILAR, BOUGHT_TOGETHER})
#: The edge fact a block reads when it reads a visitor without product history.
HISTORY_FACT: Final = "history"


def has_history(attributes: Mapping[str, Any]) -> bool:
    """Whether the targeting attributes show product history: viewed, in the cart, bought."""
    cart = attributes.get("cart")
    lines = cart.get("lines") if isinstance(cart, Mapping) else None
    return bool(attributes.get("recentlyViewed") or lines or attributes.get("purchased"))


@dataclass(frozen=True, slots=True)
class RecommendationSpec:
    """One recommendations block as served: its strategy and what it starts from."""

    block_id: str
    strategy: str
    limit: int
    #: The product `similar` / `frequently-bought-together` start from, if any.
    anchor: str | None
    exclude_owned: bool

    @property
    def reads_visitor(self) -> bool:
        """Whether the products depend on who the visitor is (their history or cart)."""
        if self.exclude_owned:
            return True
        if self.strategy in (PERSONALIZED, RECENTLY_VIEWED):
            return True
        # Without a product to start from, "bought together" starts from the cart.
        return self.strategy == BOUGHT_TOGETHER and self.anchor is None

    def scope(self, history: bool) -> Scope:
        """Who may share the block's products, for a visitor with or without product history."""
        if not self.reads_visitor:
            return "public"
        return "individual" if history else "audience"


def recommendation_spec(
    block_id: str, fields: Mapping[str, Any], page_product: str | None
) -> RecommendationSpec:
    """The spec of a served recommendations variant; `page_product` is the page's product."""
    strategy = str(fields.get("strategy") or PERSONALIZED)
    limit = fields.get("limit")
    anchor = fields.get("productId")
    if not isinstance(anchor, str) or not anchor:
        anchor = page_product if strategy in (SIMILAR, BOUGHT_TOGETHER) else None
    owned = fields.get("excludeOwned")
    exclude = owned if isinstance(owned, bool) else strategy not in SHARED_STRATEGIES
    if strategy == BOUGHT_TOGETHER and anchor is None:
        exclude = True  # it starts from the cart, which it must not recommend again
    return RecommendationSpec(
        block_id=block_id,
        strategy=strategy,
        limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else 8,
        anchor=anchor,
        exclude_owned=exclude,
    )
