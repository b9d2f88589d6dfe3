"""Audiences: named targeting conditions that editors reference from variants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blocks.conditions import CompiledCondition, compile_condition


@dataclass(frozen=True, slots=True)
class Audience:
    """A named condition, e.g. `high_value` = `{"traits.ltv": {"$gte": 500}}`."""

    name: str
    condition: CompiledCondition
    description: str = ""

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Audience:
        """Build an audience from its stored form `{_id|name, condition, description}`."""
        name = document.get("name", document.get("_id"))
        if not isinstance(name, str) or not name:
            raise ValueError("audience needs a non-empty string 'name'")
        description = document.get("description") or ""
        return cls(
            name=name,
            condition=compile_condition(document.get("condition", {})),
            description=str(description),
        )


class AudienceSet:
    """An immutable collection of audiences, evaluated together."""

    __slots__ = ("_audiences",)

    def __init__(self, audiences: Iterable[Audience] = ()) -> None:
        self._audiences = {audience.name: audience for audience in audiences}

    def __contains__(self, name: object) -> bool:
        return name in self._audiences

    def __len__(self) -> int:
        return len(self._audiences)

    def __iter__(self) -> Any:
        return iter(self._audiences.values())

    def get(self, name: str) -> Audience | None:
        """The audience called `name`, if defined."""
        return self._audiences.get(name)

    def memberships(
        self,
        attributes: Mapping[str, Any],
        groups: Mapping[str, Sequence[Any]] | None = None,
    ) -> frozenset[str]:
        """The names of every audience whose condition the attributes satisfy."""
        return frozenset(
            name
            for name, audience in self._audiences.items()
            if audience.condition.matches(attributes, groups)
        )
