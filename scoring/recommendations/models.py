"""Recommendation models: item-item collaborative filtering, content-based, a hybrid.

All three are item-to-item: each item keeps its `neighbours` most similar
items (`Neighbours`, a compact CSR of top-K lists), and a visitor's scores
are the sum of their items' neighbour lists weighted by how strongly (and how
recently) they touched each item. Serving a visitor therefore costs a few
hundred additions, never a pass over all visitors.

- **Item-item CF** (implicit feedback): the visitor-by-item matrix of decayed
  weights (`interactions.WEIGHTS`, halved every `half_life_days`, then
  `log1p`-damped so one obsessive visitor cannot dominate), cosine similarity
  between item columns, shrunk towards 0 when few visitors share two items
  (`sim · n / (n + shrink)`).
- **Content-based**: TF-IDF over each product's name, category (twice), tags,
  brand and description, cosine similarity.
- **Popularity**: decayed weight per item; what a visitor without history
  gets (cold start) and the tie-breaker everywhere.
- **Hybrid**: `cf·w_cf + content·w_content + popularity·w_pop`, each part
  scaled to a maximum of 1 per visitor; the weights are chosen on a
  validation split at training time (`choose_blend`).
- **Frequently bought together**: cosine over baskets (the products one
  visitor carted or bought in one session), at least `min_support` baskets.

The model holds items and their similarities only: no visitor id, so erasing
a visitor (GDPR) has nothing to find in it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from blocks.catalog import Catalog
from scoring.recommendations.interactions import Interaction, baskets, decay

POPULARITY: Final = "popularity"
ITEM_CF: Final = "item-cf"
CONTENT: Final = "content"
HYBRID: Final = "hybrid"
MODELS: Final = (POPULARITY, ITEM_CF, CONTENT, HYBRID)
#: Scores below this are noise: an item needs some evidence to be recommended on it.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Params:
    """Training parameters (stored with the model)."""

    half_life_days: float = 30.0
    neighbours: int = 100
    shrink: float = 5.0
    min_support: int = 2


DEFAULT_PARAMS: Final = Params()


@dataclass(frozen=True, slots=True)
class Blend:
    """The hybrid's weights."""

    cf: float = 0.6
    content: float = 0.4
    popularity: float = 0.1

    def as_dict(self) -> dict[str, float]:
        """The weights, for reports."""
        return {"cf": self.cf, "content": self.content, "popularity": self.popularity}


DEFAULT_BLEND: Final = Blend()
#: Candidate blends `choose_blend` tries; the last is popularity alone.
BLENDS: Final = (
    *(
        Blend(cf, round(1.0 - cf, 2), pop)
        for cf in (0.0, 0.25, 0.5, 0.75, 1.0)
        for pop in (0.0, 0.05, 0.2, 0.5, 1.0, 2.0)
    ),
    Blend(0.0, 0.0, 1.0),
)


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Each item's most similar items and their similarity, as CSR arrays."""

    indptr: np.ndarray[Any, np.dtype[np.int64]]
    indices: np.ndarray[Any, np.dtype[np.int32]]
    scores: np.ndarray[Any, np.dtype[np.float32]]

    def row(self, item: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The neighbours of `item` (indices, similarities)."""
        start, end = self.indptr[item], self.indptr[item + 1]
        return self.indices[start:end], self.scores[start:end]

    @property
    def pairs(self) -> int:
        """How many (item, neighbour) pairs are kept."""
        return int(self.indices.shape[0])


def top_neighbours(similarity: Any, k: int, min_score: float = _EPSILON) -> Neighbours:
    """The `k` best off-diagonal entries of each row of a square (sparse or dense) matrix."""
    matrix = sparse.csr_matrix(similarity, dtype=np.float32)
    matrix.setdiag(0.0)
    matrix.eliminate_zeros()
    indptr = [0]
    indices: list[np.ndarray[Any, Any]] = []
    scores: list[np.ndarray[Any, Any]] = []
    for item in range(matrix.shape[0]):
        start, end = matrix.indptr[item], matrix.indptr[item + 1]
        cols = matrix.indices[start:end]
        vals = matrix.data[start:end]
        keep = vals > min_score
        cols, vals = cols[keep], vals[keep]
        if cols.shape[0] > k:
            best = np.argpartition(-vals, k - 1)[:k]
            cols, vals = cols[best], vals[best]
        order = np.argsort(-vals, kind="stable")
        indices.append(cols[order].astype(np.int32))
        scores.append(vals[order].astype(np.float32))
        indptr.append(indptr[-1] + cols.shape[0])
    return Neighbours(
        indptr=np.asarray(indptr, dtype=np.int64),
        indices=np.concatenate(indices) if indices else np.zeros(0, np.int32),
        scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
    )


def _empty(n: int) -> Neighbours:
    return Neighbours(
        np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
    )


def visitor_weights(
    touches: Iterable[Interaction], index: Mapping[str, int], now: datetime, half_life_days: float
) -> dict[str, dict[int, float]]:
    """Each visitor's damped, decayed weight per item (unknown items left out)."""
    raw: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for touch in touches:
        item = index.get(touch.item)
        if item is not None:
            raw[touch.visitor][item] += decay(touch.weight, touch.at, now, half_life_days)
    return {
        visitor: {item: math.log1p(weight) for item, weight in items.items()}
        for visitor, items in raw.items()
    }


def _cf_similarity(
    weights: Mapping[str, Mapping[int, float]], n_items: int, shrink: float
) -> sparse.csr_matrix:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for row, items in enumerate(weights.values()):
        for item, weight in items.items():
            rows.append(row)
            cols.append(item)
            vals.append(weight)
    matrix = sparse.csr_matrix(
        (np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(len(weights), n_items)
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    normalized = matrix @ sparse.diags(1.0 / norms)
    similarity = (normalized.T @ normalized).tocsr()
    if shrink > 0:
        binary = (matrix > 0).astype(np.float64)
        common = (binary.T @ binary).tocsr()
        # Same sparsity pattern: shrink each similarity by how many visitors support it.
        support = common.multiply(similarity > 0).tocsr()
        similarity = similarity.multiply(support).tocsr()
        factor = support.copy()
        factor.data = 1.0 / (factor.data + shrink)
        similarity = similarity.multiply(factor).tocsr()
    return similarity


def _content_similarity(texts: Sequence[str], k: int) -> Neighbours:
    if not any(text.strip() for text in texts):
        return _empty(len(texts))
    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b[\w-]+\b", sublinear_tf=True)
    matrix = vectorizer.fit_transform([text or "" for text in texts]).tocsr()
    # In blocks of rows: the full item-by-item product of a large catalogue would not fit.
    parts = []
    for start in range(0, matrix.shape[0], 1024):
        block = (matrix[start : start + 1024] @ matrix.T).tocsr()
        parts.append(block)
    return top_neighbours(sparse.vstack(parts).tocsr(), k)


def _basket_similarity(groups: Sequence[Sequence[int]], n_items: int, min_support: int) -> Any:
    rows: list[int] = []
    cols: list[int] = []
    for row, group in enumerate(groups):
        for item in group:
            rows.append(row)
            cols.append(item)
    matrix = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(groups), n_items), dtype=np.float64
    )
    together = (matrix.T @ matrix).tocsr()
    counts = together.diagonal().copy()
    counts[counts == 0] = 1.0
    together.data[together.data < min_support] = 0.0
    together.eliminate_zeros()
    scale = sparse.diags(1.0 / np.sqrt(counts))
    return (scale @ together @ scale).tocsr()


def _scaled(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else values


@dataclass(slots=True)
class RecommendationModel:
    """The trained models (a registry artifact of kind `recommendations`)."""

    items: tuple[str, ...]
    popularity: np.ndarray[Any, np.dtype[np.float64]]
    cf: Neighbours
    content: Neighbours
    together: Neighbours
    blend: Blend
    params: Params
    trained_at: datetime
    categories: tuple[str | None, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._index:
            self._index = {item: i for i, item in enumerate(self.items)}

    @property
    def index(self) -> Mapping[str, int]:
        """Item id → position."""
        return self._index

    def history(
        self, touches: Iterable[tuple[str, float, datetime]], now: datetime
    ) -> dict[int, float]:
        """A visitor's damped, decayed weight per known item, from `(item, weight, at)`."""
        raw: dict[int, float] = defaultdict(float)
        for item, weight, at in touches:
            position = self._index.get(item)
            if position is not None:
                raw[position] += decay(weight, at, now, self.params.half_life_days)
        return {item: math.log1p(weight) for item, weight in raw.items()}

    def _spread(self, neighbours: Neighbours, history: Mapping[int, float]) -> np.ndarray[Any, Any]:
        scores = np.zeros(len(self.items), dtype=np.float64)
        for item, weight in history.items():
            indices, sims = neighbours.row(item)
            if indices.size:
                np.add.at(scores, indices, weight * sims.astype(np.float64))
        return scores

    def components(self, history: Mapping[int, float]) -> dict[str, np.ndarray[Any, Any]]:
        """Each model's scores of every item for this history, scaled to a maximum of 1."""
        return {
            ITEM_CF: _scaled(self._spread(self.cf, history)),
            CONTENT: _scaled(self._spread(self.content, history)),
            POPULARITY: _scaled(self.popularity.astype(np.float64)),
        }

    def scores(
        self, history: Mapping[int, float], model: str = HYBRID, blend: Blend | None = None
    ) -> np.ndarray[Any, Any]:
        """Every item's score under `model` (popularity breaks ties and fills gaps)."""
        parts = self.components(history)
        popular = parts[POPULARITY]
        if model == POPULARITY or not history:
            return popular.copy()
        if model == ITEM_CF:
            return parts[ITEM_CF] + 1e-6 * popular
        if model == CONTENT:
            return parts[CONTENT] + 1e-6 * popular
        return blended(parts, blend or self.blend)

    def recommend(
        self,
        history: Mapping[int, float],
        k: int,
        *,
        exclude: Iterable[str] = (),
        model: str = HYBRID,
    ) -> list[str]:
        """The `k` best items for a visitor with this history, leaving out `exclude`."""
        return self.top(self.scores(history, model), k, exclude)

    def top(self, scores: np.ndarray[Any, Any], k: int, exclude: Iterable[str] = ()) -> list[str]:
        """The `k` items of highest score (positive only), leaving out `exclude`."""
        scores = scores.copy()
        for item in exclude:
            position = self._index.get(item)
            if position is not None:
                scores[position] = -np.inf
        return [self.items[i] for i in top_k(scores, k)]

    def similar(self, anchor: str, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """Items like `anchor`: its content neighbours and what its visitors also touched."""
        position = self._index.get(anchor)
        if position is None:
            return []
        history = {position: 1.0}
        cf = _scaled(self._spread(self.cf, history))
        content = _scaled(self._spread(self.content, history))
        return self.top(0.5 * content + 0.5 * cf, k, [anchor, *exclude])

    def bought_together(
        self, anchors: Sequence[str], k: int, exclude: Iterable[str] = ()
    ) -> list[str]:
        """Items carted or bought in the same sessions as `anchors`."""
        history = {self._index[a]: 1.0 for a in anchors if a in self._index}
        if not history:
            return []
        scores = _scaled(self._spread(self.together, history))
        return self.top(scores, k, [*anchors, *exclude])

    def popular(self, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """The `k` most popular items."""
        return self.top(self.popularity.astype(np.float64), k, exclude)


def blended(parts: Mapping[str, np.ndarray[Any, Any]], blend: Blend) -> np.ndarray[Any, Any]:
    """The hybrid score of every item from the scaled parts."""
    popular = parts[POPULARITY]
    return (
        blend.cf * parts[ITEM_CF]
        + blend.content * parts[CONTENT]
        + blend.popularity * popular
        + 1e-6 * popular
    )


def top_k(scores: np.ndarray[Any, Any], k: int) -> list[int]:
    """Positions of the `k` highest positive scores, best first (ties: lower position first)."""
    candidates = np.flatnonzero(scores > _EPSILON)
    if candidates.size == 0:
        return []
    if candidates.size > k:
        values = scores[candidates]
        best = np.argpartition(-values, k - 1)[:k]
        candidates = candidates[best]
    order = np.lexsort((candidates, -scores[candidates]))
    return [int(i) for i in candidates[order]]


def fit(
    touches: Sequence[Interaction],
    catalog: Catalog,
    *,
    now: datetime,
    params: Params = DEFAULT_PARAMS,
    blend: Blend = DEFAULT_BLEND,
) -> RecommendationModel:
    """Fit every model on `touches` (items outside the catalogue are left out)."""
    items = catalog.skus
    index = {item: i for i, item in enumerate(items)}
    n = len(items)
    weights = visitor_weights(touches, index, now, params.half_life_days)
    popularity = np.zeros(n, dtype=np.float64)
    for touch in touches:
        position = index.get(touch.item)
        if position is not None:
            popularity[position] += decay(touch.weight, touch.at, now, params.half_life_days)
    cf = (
        top_neighbours(_cf_similarity(weights, n, params.shrink), params.neighbours)
        if weights
        else _empty(n)
    )
    texts = []
    for sku in items:
        product = catalog.get(sku)
        texts.append(product.text() if product is not None else "")
    content = _content_similarity(texts, params.neighbours)
    groups = [[index[i] for i in basket if i in index] for basket in baskets(touches)]
    groups = [group for group in groups if len(group) >= 2]
    together = (
        top_neighbours(_basket_similarity(groups, n, params.min_support), params.neighbours)
        if groups
        else _empty(n)
    )
    return RecommendationModel(
        items=items,
        popularity=popularity,
        cf=cf,
        content=content,
        together=together,
        blend=blend,
        params=params,
        trained_at=now,
        categories=tuple(p.category if (p := catalog.get(sku)) else None for sku in items),
    )
