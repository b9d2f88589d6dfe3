"""The canonical content model every CMS adapter maps its entries to.

A page is an ordered list of blocks; a block has one or more variants, each
carrying the editor metadata that decides when it may be shown. Everything
here is immutable so a parsed page can be shared by concurrent requests.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from blocks.conditions import CompiledCondition
from blocks.experiments import Experiment

AudienceMatch = Literal["any", "all"]

#: What makes a field value a template (Jinja's statement and expression markers).
TEMPLATE_MARK = re.compile(r"\{\{|\{%")


def holds_template(value: Any) -> bool:
    """Whether a field value is, or holds anywhere inside it, a template."""
    if isinstance(value, str):
        return TEMPLATE_MARK.search(value) is not None
    if isinstance(value, Mapping):
        return any(holds_template(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(holds_template(item) for item in value)
    return False


@dataclass(frozen=True, slots=True)
class Schedule:
    """A half-open time window `[start, end)`; either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` falls inside the window."""
        if self.start is not None and moment < self.start:
            return False
        return not (self.end is not None and moment >= self.end)


@dataclass(frozen=True, slots=True)
class Variant:
    """One alternative rendering of a block, with the metadata that targets it."""

    id: str
    fields: Mapping[str, Any]
    audiences: tuple[str, ...] = ()
    audience_match: AudienceMatch = "any"
    condition: CompiledCondition | None = None
    priority: int = 0
    schedule: Schedule | None = None
    locales: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    weight: float | None = None
    default: bool = False
    rule_id: str | None = None
    localized: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Plain text per templated field, shown when the field's template fails.
    fallback: Mapping[str, str] = field(default_factory=dict)
    #: Whether any field (in any locale) holds a template: the others are served as they are.
    templated: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Decided once per parsed page, not on every page view.
        templated = holds_template(self.fields) or holds_template(self.localized)
        object.__setattr__(self, "templated", templated)

    @property
    def targeted(self) -> bool:
        """Whether the variant depends on who the visitor is."""
        return bool(self.audiences) or self.condition is not None

    def fields_for(self, locale: str | None) -> Mapping[str, Any]:
        """The variant's fields with the locale's overrides applied."""
        if locale is None or not self.localized:
            return self.fields
        overrides = self.localized.get(locale) or self.localized.get(locale.split("-")[0])
        if not overrides:
            return self.fields
        return {**self.fields, **overrides}


@dataclass(frozen=True, slots=True)
class Block:
    """A modular piece of a page: one type, several variants, one default."""

    id: str
    type: str
    variants: tuple[Variant, ...]
    #: What pure functions derived from this (immutable) block, kept with it: computed
    #: once per parsed page version, gone with it (`blocks.selection` plans from it).
    derived: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)

    def variant(self, variant_id: str) -> Variant:
        """The variant with id `variant_id`; raises KeyError if there is none."""
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise KeyError(variant_id)

    @property
    def default_variant(self) -> Variant:
        """The variant shown when no targeted variant is eligible."""
        for variant in self.variants:
            if variant.default:
                return variant
        for variant in self.variants:
            if not variant.targeted and variant.schedule is None:
                return variant
        return self.variants[-1]


@dataclass(frozen=True, slots=True)
class Page:
    """A page: its slug, titles per locale and its ordered blocks."""

    slug: str
    title: str
    blocks: tuple[Block, ...]
    locales: tuple[str, ...] = ("en-US",)
    default_locale: str = "en-US"
    titles: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    #: The experiments defined on the page's blocks, in definition (page) order.
    experiments: tuple[Experiment, ...] = ()
    #: Block id → variants only an experiment shows (also those of an invalid definition).
    experiment_only: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def experiment(self, key: str) -> Experiment | None:
        """The page's experiment `key`, if it has one."""
        return next((e for e in self.experiments if e.key == key), None)

    def title_for(self, locale: str) -> str:
        """The page title in `locale`, or the default title."""
        return self.titles.get(locale, self.title)

    def resolve_locale(self, requested: str | None) -> str | None:
        """The locale to serve for `requested`, or None when the page lacks it."""
        if requested is None:
            return self.default_locale
        if requested in self.locales:
            return requested
        # A bare language ("de") matches the page's first regional form ("de-DE").
        for locale in self.locales:
            if locale.split("-")[0].lower() == requested.lower():
                return locale
        return None
