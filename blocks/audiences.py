"""Audiences: named targeting conditions that editors reference from variants.

An audience may also reference other audiences (`audiences` with
`audienceMatch: any|all`): a visitor is a member when the audience's own
condition holds and they belong to any (or all) of the referenced ones.
References must not form a cycle; :func:`find_cycle` names one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from blocks.conditions import CompiledCondition, compile_condition


@dataclass(frozen=True, slots=True)
class Audience:
    """A named condition, e.g. `high_value` = `{"traits.ltv": {"$gte": 500}}`."""

    name: str
    condition: CompiledCondition
    description: str = ""
    audiences: tuple[str, ...] = ()
    audience_match: Literal["any", "all"] = "any"

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Audience:
        """Build an audience from its stored form `{_id|name, condition, description}`."""
        name = document.get("name", document.get("_id"))
        if not isinstance(name, str) or not name:
            raise ValueError("audience needs a non-empty string 'name'")
        description = document.get("description") or ""
        references = document.get("audiences") or []
        if not isinstance(references, list) or not all(
            isinstance(item, str) and item for item in references
        ):
            raise ValueError("'audiences' must be a list of audience names")
        match = document.get("audienceMatch", "any")
        if match not in ("any", "all"):
            raise ValueError("'audienceMatch' must be 'any' or 'all'")
        return cls(
            name=name,
            condition=compile_condition(document.get("condition", {})),
            description=str(description),
            audiences=tuple(references),
            audience_match=match,
        )


def _on_cycles(references: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """The names from which a chain of references leads back to themselves."""
    cyclic: set[str] = set()
    for start in references:
        seen: set[str] = set()
        stack = list(references.get(start, ()))
        while stack:
            name = stack.pop()
            if name == start:
                cyclic.add(start)
                break
            if name in seen or name not in references:
                continue
            seen.add(name)
            stack.extend(references[name])
    return frozenset(cyclic)


def find_cycle(references: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A reference cycle as `[a, b, a]`, or None; `references` maps name → referenced names."""
    done: set[str] = set()
    for start in sorted(references):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                path.append(name)
                on_path.add(name)
            children = [c for c in references.get(name, ()) if c in references]
            if index < len(children):
                stack.append((name, index + 1))
                child = children[index]
                if child in on_path:
                    return [*path[path.index(child) :], child]
                if child not in done:
                    stack.append((child, 0))
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
    return None


class AudienceSet:
    """An immutable collection of audiences, evaluated together."""

    __slots__ = ("_audiences", "_cyclic")

    def __init__(self, audiences: Iterable[Audience] = ()) -> None:
        self._audiences = {audience.name: audience for audience in audiences}
        self._cyclic = _on_cycles({name: a.audiences for name, a in self._audiences.items()})

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
        """The names of every audience whose condition (and references) the attributes satisfy."""
        memo: dict[str, bool] = {}
        visiting: set[str] = set()

        def member(name: str) -> bool:
            if name in memo:
                return memo[name]
            audience = self._audiences.get(name)
            if audience is None or name in self._cyclic or name in visiting:
                return False  # unknown, or on a cycle (rejected on write, logged on load)
            visiting.add(name)
            result = audience.condition.matches(attributes, groups)
            if result and audience.audiences:
                found = (member(ref) for ref in audience.audiences)
                result = all(found) if audience.audience_match == "all" else any(found)
            visiting.discard(name)
            memo[name] = result
            return result

        return frozenset(name for name in self._audiences if member(name))
