"""Reject queries nested deeper than a limit, without defeating the validation cache.

Strawberry's `QueryDepthLimiter` builds a new validation rule class each time
it is instantiated; as a per-request factory that makes every request's rule
set unique, so `ValidationCache` never hits. Here the rule is built once and
each request gets a fresh extension carrying that same rule.
"""

from __future__ import annotations

from collections.abc import Callable

from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.extensions.query_depth_limiter import create_validator


def depth_limit(max_depth: int) -> Callable[[], SchemaExtension]:
    """An extension factory that limits query depth to `max_depth`."""
    rule = create_validator(max_depth, should_ignore=None)

    def factory() -> SchemaExtension:
        return AddValidationRules([rule])

    return factory
