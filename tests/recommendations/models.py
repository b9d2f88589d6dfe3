"""Recommendation models the serving tests store in the registry (module level: they unpickle)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.recommendations.models import HYBRID, RecommendationModel


@dataclass(slots=True)
class SlowModel(RecommendationModel):
    """A recommendation model that takes two seconds per visitor: pages must not wait."""

    def recommend(
        self,
        history: Mapping[int, float],
        k: int,
        *,
        exclude: Iterable[str] = (),
        model: str = HYBRID,
    ) -> list[str]:
        time.sleep(2.0)
        return RecommendationModel.recommend(self, history, k, exclude=exclude, model=model)


@dataclass(slots=True)
class BrokenModel(RecommendationModel):
    """A recommendation model that fails on every call."""

    def recommend(self, *args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("broken on purpose")
