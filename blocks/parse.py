"""Turn content documents (plain dicts from any CMS) into the canonical model.

Problems are precise and local: a bad variant is dropped and reported with
the path of the offending field, a block left without variants is dropped,
and only a page whose own structure is wrong fails as a whole. A page that
parses is therefore always renderable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from blocks.block_types import validate_fields
from blocks.conditions import ROOT, compile_condition
from blocks.experiment_spec import ArmInfo, PageArms, claimed_treatments, compile_experiment
from blocks.experiments import Experiment, treatment_variants
from blocks.model import Block, Page, Schedule, Variant

_LOCALE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


class ContentError(ValueError):
    """A content document that cannot become a page; `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class ContentProblem:
    """A part of the content that was left out, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """A page plus the problems met while parsing it."""

    page: Page
    problems: tuple[ContentProblem, ...]
    #: Identifies this copy of the content; set by the content cache on each fetch.
    version: str = ""
    #: The canonical document the page was parsed from (for the linter).
    document: Mapping[str, Any] | None = None


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleDoc(_Meta):
    """`schedule { start end timezone }` in ISO 8601."""

    start: datetime | None = None
    end: datetime | None = None
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def to_schedule(self) -> Schedule:
        """Resolve naive bounds in the schedule's time zone (UTC by default)."""
        zone = ZoneInfo(self.timezone or "UTC")

        def aware(moment: datetime | None) -> datetime | None:
            if moment is None or moment.tzinfo is not None:
                return moment
            return moment.replace(tzinfo=zone)

        return Schedule(start=aware(self.start), end=aware(self.end))


class VariantDoc(_Meta):
    """A variant with the editor metadata vocabulary."""

    id: str = Field(min_length=1, max_length=128)
    fields: dict[str, Any] = Field(default_factory=dict)
    audiences: list[str] = Field(default_factory=list)
    audience_match: Literal["any", "all"] = Field(default="any", alias="audienceMatch")
    condition: dict[str, Any] | None = None
    priority: int = 0
    schedule: ScheduleDoc | None = None
    locales: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    weight: float | None = Field(default=None, ge=0)
    default: bool = False
    experiment: dict[str, Any] | None = None
    rule_id: str | None = Field(default=None, alias="ruleId")
    localized: dict[str, dict[str, Any]] = Field(default_factory=dict)
    fallback: dict[str, str] = Field(default_factory=dict)


def _error_path(prefix: str, error: Mapping[str, Any]) -> str:
    path = prefix
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _first_error(prefix: str, exc: ValidationError) -> ContentError:
    error = exc.errors(include_url=False)[0]
    return ContentError(_error_path(prefix, error), str(error.get("msg", "invalid")))


def _valid_fields(block_type: str, fields: Any, path: str) -> dict[str, Any]:
    try:
        return validate_fields(block_type, fields)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    except TypeError as exc:
        raise ContentError(path, str(exc)) from None


def parse_variant(block_type: str, document: Any, path: str) -> Variant:
    """Parse one variant; raises ContentError naming the field at fault."""
    if not isinstance(document, Mapping):
        raise ContentError(path, "a variant must be an object")
    try:
        doc = VariantDoc.model_validate(document)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    fields = _valid_fields(block_type, doc.fields, f"{path}.fields")
    localized: dict[str, dict[str, Any]] = {}
    for locale, overrides in doc.localized.items():
        where = f"{path}.localized.{locale}"
        if not _LOCALE.fullmatch(locale):
            raise ContentError(where, f"{locale!r} is not a locale such as 'de-DE'")
        merged = _valid_fields(block_type, {**doc.fields, **overrides}, where)
        # Keep the validated (normalised) values of the overridden fields only.
        localized[locale] = {key: merged[key] for key in overrides if key in merged}
    for index, locale in enumerate(doc.locales):
        if not _LOCALE.fullmatch(locale):
            raise ContentError(f"{path}.locales[{index}]", f"{locale!r} is not a locale")
    condition = None
    if doc.condition is not None:
        condition = compile_condition(doc.condition)
        if not condition.valid:
            problem = condition.problems[0]
            where = f"{path}.condition"
            if problem.path != ROOT:
                where += f".{problem.path}"
            raise ContentError(where, problem.message)
    schedule = doc.schedule.to_schedule() if doc.schedule else None
    if schedule and schedule.start and schedule.end and schedule.end <= schedule.start:
        raise ContentError(f"{path}.schedule.end", "the schedule ends before it starts")
    return Variant(
        id=doc.id,
        fields=fields,
        audiences=tuple(doc.audiences),
        audience_match=doc.audience_match,
        condition=condition,
        priority=doc.priority,
        schedule=schedule,
        locales=tuple(doc.locales),
        tags=tuple(doc.tags),
        weight=doc.weight,
        default=doc.default,
        rule_id=doc.rule_id,
        localized=localized,
        fallback=doc.fallback,
    )


def parse_block(document: Any, path: str, problems: list[ContentProblem]) -> Block:
    """Parse one block, dropping (and reporting) variants that do not parse."""
    if not isinstance(document, Mapping):
        raise ContentError(path, "a block must be an object")
    block_id = document.get("id")
    block_type = document.get("type")
    if not isinstance(block_id, str) or not block_id:
        raise ContentError(f"{path}.id", "a block needs a non-empty string id")
    if not isinstance(block_type, str) or not block_type:
        raise ContentError(f"{path}.type", "a block needs a non-empty string type")
    raw_variants = document.get("variants")
    if not isinstance(raw_variants, list) or not raw_variants:
        raise ContentError(f"{path}.variants", "a block needs a non-empty list of variants")
    variants: list[Variant] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_variants):
        variant_path = f"{path}.variants[{index}]"
        try:
            variant = parse_variant(block_type, raw, variant_path)
        except ContentError as exc:
            problems.append(ContentProblem(exc.path, exc.message))
            continue
        if variant.id in seen:
            problems.append(ContentProblem(f"{variant_path}.id", f"duplicate id {variant.id!r}"))
            continue
        seen.add(variant.id)
        variants.append(variant)
    if not variants:
        raise ContentError(f"{path}.variants", "no variant of this block is valid")
    return Block(id=block_id, type=block_type, variants=tuple(variants))


def page_arms(blocks: list[Block]) -> PageArms:
    """What experiment definitions need to know about the page's (valid) variants."""
    return {
        block.id: {
            variant.id: ArmInfo(weight=variant.weight, targeted=variant.targeted)
            for variant in block.variants
        }
        for block in blocks
    }


def _experiments(
    raw_blocks: list[Any], blocks: list[Block], problems: list[ContentProblem]
) -> tuple[tuple[Experiment, ...], dict[str, frozenset[str]]]:
    """The experiments defined on the page's variants, and the variants only they show.

    A faulty definition is dropped and reported; the arms it names stay reserved.
    """
    arms = page_arms(blocks)
    parsed = {block.id: block for block in blocks}
    found: list[Experiment] = []
    reserved: dict[str, frozenset[str]] = {}
    for index, raw in enumerate(raw_blocks):
        block_id = raw.get("id") if isinstance(raw, Mapping) else None
        block = parsed.get(block_id) if isinstance(block_id, str) else None
        if block is None or not isinstance(raw.get("variants"), list):
            continue
        kept = {variant.id for variant in block.variants}
        for position, variant in enumerate(raw["variants"]):
            if not isinstance(variant, Mapping) or variant.get("experiment") is None:
                continue
            if variant.get("id") not in kept:
                continue  # the variant itself was dropped (and reported)
            where = f"blocks[{index}].variants[{position}].experiment"
            experiment, found_problems = compile_experiment(variant["experiment"], block.id, arms)
            errors = [p for p in found_problems if p.severity == "error"]
            for problem in errors:
                path = where if problem.path in ("", ROOT) else f"{where}.{problem.path}"
                problems.append(ContentProblem(path, problem.message))
            if experiment is None:
                for claimed_block, claimed in claimed_treatments(
                    variant["experiment"], block.id
                ).items():
                    reserved[claimed_block] = reserved.get(claimed_block, frozenset()) | claimed
                continue
            if any(other.key == experiment.key for other in found):
                problems.append(
                    ContentProblem(
                        f"{where}.key", f"experiment {experiment.key!r} is defined twice"
                    )
                )
                continue
            found.append(experiment)
    for block_id, treatments in treatment_variants(found).items():
        reserved[block_id] = reserved.get(block_id, frozenset()) | treatments
    return tuple(found), reserved


def _string_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ContentError(path, "must be a list of non-empty strings")
    return tuple(value)


def parse_page(document: Any, source: str = "") -> ParsedPage:
    """Parse a page document whose blocks are already inlined."""
    if not isinstance(document, Mapping):
        raise ContentError(source, "a page must be an object")
    slug = document.get("slug")
    title = document.get("title")
    if not isinstance(slug, str) or not slug:
        raise ContentError("slug", "a page needs a non-empty string slug")
    if not isinstance(title, str) or not title:
        raise ContentError("title", "a page needs a non-empty string title")
    locales = _string_list(document.get("locales", ["en-US"]), "locales")
    if not locales:
        raise ContentError("locales", "a page needs at least one locale")
    for index, locale in enumerate(locales):
        if not _LOCALE.fullmatch(locale):
            raise ContentError(f"locales[{index}]", f"{locale!r} is not a locale such as 'en-US'")
    default_locale = document.get("defaultLocale", locales[0])
    if default_locale not in locales:
        raise ContentError("defaultLocale", f"{default_locale!r} is not one of {list(locales)}")
    titles = document.get("titles", {})
    if not isinstance(titles, Mapping) or not all(isinstance(v, str) for v in titles.values()):
        raise ContentError("titles", "must map locales to strings")
    raw_blocks = document.get("blocks")
    if not isinstance(raw_blocks, list):
        raise ContentError("blocks", "a page needs a list of blocks")
    problems: list[ContentProblem] = []
    blocks: list[Block] = []
    block_ids: set[str] = set()
    for index, raw in enumerate(raw_blocks):
        try:
            block = parse_block(raw, f"blocks[{index}]", problems)
        except ContentError as exc:
            problems.append(ContentProblem(exc.path, exc.message))
            continue
        if block.id in block_ids:
            problems.append(ContentProblem(f"blocks[{index}].id", f"duplicate id {block.id!r}"))
            continue
        block_ids.add(block.id)
        blocks.append(block)
    experiments, experiment_only = _experiments(raw_blocks, blocks, problems)
    description = document.get("description")
    page = Page(
        slug=slug,
        title=title,
        blocks=tuple(blocks),
        locales=locales,
        default_locale=str(default_locale),
        titles=dict(titles),
        description=description if isinstance(description, str) else None,
        experiments=experiments,
        experiment_only=experiment_only,
    )
    return ParsedPage(page=page, problems=tuple(problems), document=document)
