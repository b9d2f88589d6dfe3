"""The content linter: every problem in pages, blocks, variants and audiences.

Pure: it reads canonical page documents (blocks inlined, as adapters produce
them) and audience definitions, and returns :class:`Finding`s naming the
page, block, variant and field path, what is wrong and a suggestion. The
finding codes and their severities are listed in :data:`RULES` (and in
docs/editors.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from blocks.audiences import Audience, find_cycle
from blocks.block_types import validate_fields
from blocks.conditions import ROOT, read_attributes, validate
from blocks.experiment_spec import (
    ArmInfo,
    PageArms,
    claimed_treatments,
    compile_experiment,
    overlapping,
    signature,
)
from blocks.experiments import Experiment, treatment_variants
from blocks.metadata import check_block, format_path
from blocks.parse import ScheduleDoc
from blocks.selection import EDGE_ATTRIBUTES, SHARED_ATTRIBUTES
from blocks.templating import HTML_FIELDS, is_template, template_problems

Severity = Literal["error", "warning"]

#: Every finding code, its severity and what it means.
RULES: Mapping[str, tuple[Severity, str]] = {
    "page.malformed": ("error", "the page itself cannot be read (no slug, no blocks list...)"),
    "schema.type": ("error", "a metadata field has the wrong type"),
    "schema.unknown-field": ("error", "a field the vocabulary does not know"),
    "schema.typo": ("error", "an unknown field that looks like a misspelt known field"),
    "schema.required": ("error", "a required field is missing"),
    "schema.invalid": ("error", "a value the vocabulary does not allow"),
    "fields.invalid": ("error", "the content fields do not fit the block type"),
    "audience.unknown": ("error", "a variant or audience names an audience that does not exist"),
    "audience.cycle": ("error", "audiences that reference each other in a cycle"),
    "condition.invalid": ("error", "a condition that does not parse"),
    "condition.unknown-operator": ("error", "a condition uses an operator that does not exist"),
    "condition.regex": ("error", "a regex that does not compile or may backtrack catastrophically"),
    "variant.duplicate-id": ("error", "two variants of a block share an id"),
    "block.duplicate-id": ("error", "two blocks of a page share an id"),
    "block.no-default": ("error", "a block without a default variant"),
    "block.multiple-defaults": ("error", "a block with more than one `default: true`"),
    "variant.unreachable": ("warning", "a variant that can never be chosen"),
    "condition.private": (
        "warning",
        "a condition on the visitor's own attributes: the page is never shared by an edge cache",
    ),
    "schedule.inverted": ("error", "a schedule that ends before it starts"),
    "schedule.expired": ("warning", "a schedule that is already over"),
    "schedule.timezone": ("error", "a schedule in an unknown time zone"),
    "template.syntax": ("error", "a template that does not compile (or nests too deeply)"),
    "template.unknown-field": ("error", "a template that reads an unknown profile field"),
    "template.limit": (
        "error",
        "a template that breaks a sandbox limit whatever the visitor (size, loops, methods)",
    ),
    "experiment.invalid": ("error", "an experiment definition that cannot run (it is ignored)"),
    "experiment.duplicate-key": ("error", "two experiments of a page share a key"),
    "experiment.conflict": ("error", "pages define the same experiment key differently"),
    "experiment.default-arm": (
        "error",
        "a block whose default variant is a treatment arm (shown outside the experiment)",
    ),
    "experiment.targeted-arm": (
        "warning",
        "an arm with its own audiences or condition (ignored for visitors in the experiment)",
    ),
    "experiment.overlap": (
        "warning",
        "two experiments on one block without disjoint namespace ranges",
    ),
    "experiment.ended": ("warning", "a running experiment past its end: it enrolls nobody"),
}

_REGEX_OPERATORS = ("$regex", "$regexi", "$notRegex", "$notRegexi")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: where it is, what is wrong and what to do about it."""

    severity: Severity
    code: str
    page: str
    block_id: str | None
    variant_id: str | None
    path: str
    message: str
    suggestion: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data (camelCase keys)."""
        data = asdict(self)
        data["blockId"] = data.pop("block_id")
        data["variantId"] = data.pop("variant_id")
        return data

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"page {self.page}" if self.page else "",
                f"block {self.block_id}" if self.block_id else "",
                f"variant {self.variant_id}" if self.variant_id else "",
            )
            if part
        )
        where = where or "audiences"
        text = f"{self.severity}: {where}: {self.path}: {self.message} [{self.code}]"
        return f"{text}\n    suggestion: {self.suggestion}" if self.suggestion else text


class _Collector:
    def __init__(self, page: str) -> None:
        self.page = page
        self.findings: list[Finding] = []

    def add(
        self,
        code: str,
        path: str,
        message: str,
        suggestion: str = "",
        *,
        block: str | None = None,
        variant: str | None = None,
    ) -> None:
        severity = RULES[code][0]
        self.findings.append(
            Finding(severity, code, self.page, block, variant, path, message, suggestion)
        )


def _str_id(document: Any) -> str | None:
    value = document.get("id") if isinstance(document, Mapping) else None
    return value if isinstance(value, str) and value else None


def _condition_code(path: str, message: str) -> str:
    if any(path.endswith(op) for op in _REGEX_OPERATORS):
        return "condition.regex"
    if message.startswith("unknown operator"):
        return "condition.unknown-operator"
    return "condition.invalid"


def _check_condition(
    out: _Collector, condition: Any, path: str, block: str | None, variant: str | None
) -> None:
    for problem in validate(condition):
        where = path if problem.path == ROOT else f"{path}.{problem.path}"
        code = _condition_code(problem.path, problem.message)
        suggestion = {
            "condition.regex": "fix the pattern's syntax"
            if problem.message.startswith("invalid pattern")
            else "simplify the pattern (no nested repetition such as (a+)+)",
            "condition.unknown-operator": "use an operator listed in docs/editors.md",
        }.get(code, "see the condition syntax in docs/editors.md")
        out.add(code, where, problem.message, suggestion, block=block, variant=variant)


def _check_shareable(
    out: _Collector, condition: Any, path: str, block: str | None, variant: str | None
) -> None:
    if validate(condition):
        return  # reported as malformed already
    individual = read_attributes(condition) - EDGE_ATTRIBUTES - SHARED_ATTRIBUTES
    if individual:
        out.add(
            "condition.private",
            path,
            f"reads the visitor's own {', '.join(sorted(individual))}: every page showing this "
            "block is private to its visitor, and no edge cache can share it",
            "define an audience with this condition and target it with `audiences:` "
            "(audience pages are shared among visitors with the same memberships)",
            block=block,
            variant=variant,
        )


def _check_audiences(
    out: _Collector,
    names: Any,
    path: str,
    known: Iterable[str],
    block: str | None,
    variant: str | None,
) -> None:
    if not isinstance(names, list):
        return
    known_names = sorted(known)
    for index, name in enumerate(names):
        if isinstance(name, str) and name not in known_names:
            close = difflib.get_close_matches(name, known_names, n=1, cutoff=0.6)
            suggestion = (
                f"did you mean {close[0]!r}?"
                if close
                else f"define it, or use one of: {', '.join(known_names) or '(none defined)'}"
            )
            out.add(
                "audience.unknown",
                f"{path}[{index}]",
                f"unknown audience {name!r}",
                suggestion,
                block=block,
                variant=variant,
            )


def _check_schedule(
    out: _Collector, schedule: Any, path: str, now: datetime, block: str, variant: str
) -> None:
    if not isinstance(schedule, Mapping):
        return
    zone = schedule.get("timezone")
    if isinstance(zone, str):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            out.add(
                "schedule.timezone",
                f"{path}.timezone",
                f"unknown time zone {zone!r}",
                "use an IANA name such as 'Europe/Berlin' or 'America/New_York'",
                block=block,
                variant=variant,
            )
            return
    try:
        window = ScheduleDoc.model_validate(schedule).to_schedule()
    except ValueError:
        return  # the schema check reports the bad value
    if window.start and window.end and window.end <= window.start:
        out.add(
            "schedule.inverted",
            f"{path}.end",
            f"the schedule ends ({window.end.isoformat()}) before it starts "
            f"({window.start.isoformat()})",
            "swap start and end, or fix the dates",
            block=block,
            variant=variant,
        )
    elif window.end and window.end <= now:
        out.add(
            "schedule.expired",
            f"{path}.end",
            f"the schedule ended on {window.end.isoformat()}: the variant is never shown again",
            "remove the variant or move its end date",
            block=block,
            variant=variant,
        )


def _check_templates(
    out: _Collector, block_type: str, value: Any, path: str, field: str, block: str, variant: str
) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            sub = f"{field}.{key}" if field else str(key)
            _check_templates(out, block_type, item, f"{path}.{key}", sub, block, variant)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_templates(out, block_type, item, f"{path}[{index}]", field, block, variant)
    elif is_template(value):
        html = (block_type, field) in HTML_FIELDS
        for problem in template_problems(value, html=html):
            out.add(
                problem.code,
                path,
                problem.message,
                problem.suggestion,
                block=block,
                variant=variant,
            )


def _always_matches(variant: Mapping[str, Any], audiences: Mapping[str, Audience]) -> bool:
    """Whether the variant is eligible for every visitor, at every time, in every locale."""
    if variant.get("schedule") or variant.get("locales"):
        return False
    condition = variant.get("condition")
    if condition not in (None, {}):
        return False
    names = variant.get("audiences") or []
    if not names:
        return True
    universal = [
        name in audiences
        and audiences[name].condition.condition == {}
        and not audiences[name].audiences
        for name in names
    ]
    return all(universal) if variant.get("audienceMatch") == "all" else any(universal)


def _targeted(variant: Mapping[str, Any]) -> bool:
    return bool(variant.get("audiences")) or variant.get("condition") is not None


def _check_defaults_and_shadowing(
    out: _Collector,
    variants: Sequence[Mapping[str, Any]],
    positions: Sequence[int],
    path: str,
    block: str,
    audiences: Mapping[str, Audience],
    treatments: frozenset[str] = frozenset(),
) -> None:
    marked = [i for i, v in enumerate(variants) if v.get("default") is True]
    if len(marked) > 1:
        ids = ", ".join(repr(_str_id(variants[i])) for i in marked)
        out.add(
            "block.multiple-defaults",
            f"{path}.variants[{positions[marked[1]]}].default",
            f"variants {ids} are all marked `default: true`",
            "keep `default: true` on one variant only",
            block=block,
        )
    if marked:
        default_index: int | None = marked[0]
    else:
        default_index = next(
            (i for i, v in enumerate(variants) if not _targeted(v) and not v.get("schedule")),
            None,
        )
    if default_index is None:
        out.add(
            "block.no-default",
            f"{path}.variants",
            f"block {block!r} has no default variant: every variant is targeted or scheduled, "
            f"so visitors outside them all get {_str_id(variants[-1])!r} regardless",
            "mark one variant `default: true` (or add one without audiences, condition "
            "or schedule)",
            block=block,
        )
    reported: set[int] = set()
    for w_index, winner in enumerate(variants):
        if w_index == default_index or not _always_matches(winner, audiences):
            continue
        if _str_id(winner) in treatments:
            continue  # only its experiment shows it, to the visitors it enrolls
        w_priority = winner.get("priority", 0)
        for index, variant in enumerate(variants):
            if index == w_index:
                continue
            priority = variant.get("priority", 0)
            if not isinstance(priority, int) or not isinstance(w_priority, int):
                continue
            # An equal priority shares the tier: a model's score or exploration can pick it.
            outranked = w_priority > priority
            if (index != default_index and not outranked) or index in reported:
                continue
            # Once per variant, named after the first variant that shadows it.
            reported.add(index)
            why = (
                "the default is only shown when no other variant is eligible"
                if index == default_index
                else f"it has priority {priority}"
            )
            out.add(
                "variant.unreachable",
                f"{path}.variants[{positions[index]}]",
                f"variant {_str_id(variant)!r} can never be chosen: {_str_id(winner)!r} "
                f"(priority {w_priority}) matches every visitor and wins; {why}",
                f"give {_str_id(winner)!r} audiences, a condition or a schedule, "
                f"or remove {_str_id(variant)!r}",
                block=block,
                variant=_str_id(variant),
            )


def _check_fields(
    out: _Collector, block_type: str, variant: Mapping[str, Any], path: str, block: str
) -> None:
    variant_id = _str_id(variant)
    fields = variant.get("fields", {})
    sets = [(f"{path}.fields", fields)]
    localized = variant.get("localized")
    if isinstance(localized, Mapping) and isinstance(fields, Mapping):
        for locale, overrides in localized.items():
            if isinstance(overrides, Mapping):
                sets.append((f"{path}.localized.{locale}", {**fields, **overrides}))
    for where, values in sets:
        if not isinstance(values, Mapping):
            continue  # the schema check reports it
        try:
            validate_fields(block_type, dict(values))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                out.add(
                    "fields.invalid",
                    format_path(where, error.get("loc", ())),
                    str(error.get("msg", "invalid")),
                    f"see the fields of a {block_type!r} block in docs/content.md",
                    block=block,
                    variant=variant_id,
                )


def lint_block(
    out: _Collector,
    document: Any,
    path: str,
    audiences: Mapping[str, Audience],
    now: datetime,
    treatments: frozenset[str] = frozenset(),
) -> None:
    """Check one block document and all its variants."""
    block = _str_id(document)
    broken: set[int] = set()
    for problem in check_block(document, path):
        variant = None
        if problem.path.startswith(f"{path}.variants[") and isinstance(document, Mapping):
            index = int(problem.path.split(".variants[", 1)[1].split("]", 1)[0])
            broken.add(index)
            variants = document.get("variants")
            if isinstance(variants, list) and index < len(variants):
                variant = _str_id(variants[index])
        out.add(
            problem.code,
            problem.path,
            problem.message,
            problem.suggestion,
            block=block,
            variant=variant,
        )
    if not isinstance(document, Mapping) or block is None:
        return
    block_type = document.get("type")
    variants = document.get("variants")
    if not isinstance(variants, list) or not isinstance(block_type, str):
        return
    # Variants that break the schema are never served; the others decide defaults.
    positions = [i for i, v in enumerate(variants) if isinstance(v, Mapping) and i not in broken]
    valid = [variants[i] for i in positions]
    seen: dict[str, int] = {}
    for index, variant in enumerate(variants):
        if not isinstance(variant, Mapping):
            continue
        where = f"{path}.variants[{index}]"
        variant_id = _str_id(variant) or f"#{index}"
        if variant_id in seen:
            out.add(
                "variant.duplicate-id",
                f"{where}.id",
                f"duplicate variant id {variant_id!r} (also variants[{seen[variant_id]}])",
                "give every variant of a block its own id",
                block=block,
                variant=variant_id,
            )
        seen.setdefault(variant_id, index)
        _check_audiences(
            out, variant.get("audiences"), f"{where}.audiences", audiences, block, variant_id
        )
        if isinstance(variant.get("condition"), Mapping):
            _check_condition(out, variant["condition"], f"{where}.condition", block, variant_id)
            if variant.get("default") is not True:
                _check_shareable(out, variant["condition"], f"{where}.condition", block, variant_id)
        _check_schedule(out, variant.get("schedule"), f"{where}.schedule", now, block, variant_id)
        _check_fields(out, block_type, variant, where, block)
        _check_templates(
            out, block_type, variant.get("fields"), f"{where}.fields", "", block, variant_id
        )
        localized = variant.get("localized")
        if isinstance(localized, Mapping):
            for locale, overrides in localized.items():
                _check_templates(
                    out, block_type, overrides, f"{where}.localized.{locale}", "", block, variant_id
                )
    if valid:
        _check_defaults_and_shadowing(out, valid, positions, path, block, audiences, treatments)


def lint_page(
    slug: str, document: Any, audiences: Mapping[str, Audience], now: datetime
) -> list[Finding]:
    """Every finding in one page document (blocks inlined)."""
    out = _Collector(slug)
    if not isinstance(document, Mapping) or not isinstance(document.get("blocks"), list):
        out.add("page.malformed", "blocks", "the page has no list of blocks", "add `blocks: [...]`")
        return out.findings
    treatments = _check_experiments(out, document["blocks"], now)
    seen: dict[str, int] = {}
    for index, block in enumerate(document["blocks"]):
        path = f"blocks[{index}]"
        block_id = _str_id(block)
        if block_id is not None:
            if block_id in seen:
                out.add(
                    "block.duplicate-id",
                    f"{path}.id",
                    f"duplicate block id {block_id!r} (also blocks[{seen[block_id]}])",
                    "give every block of a page its own id",
                    block=block_id,
                )
            seen.setdefault(block_id, index)
        lint_block(out, block, path, audiences, now, treatments.get(block_id or "", frozenset()))
    return out.findings


def _variant_docs(blocks: Sequence[Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for block in blocks:
        block_id = _str_id(block)
        variants = block.get("variants") if isinstance(block, Mapping) else None
        if block_id is None or block_id in out or not isinstance(variants, list):
            continue
        out[block_id] = [v for v in variants if isinstance(v, Mapping) and _str_id(v)]
    return out


def _page_arms(variants: Mapping[str, list[Mapping[str, Any]]]) -> PageArms:
    arms: dict[str, dict[str, ArmInfo]] = {}
    for block_id, docs in variants.items():
        arms[block_id] = {}
        for doc in docs:
            weight = doc.get("weight")
            arms[block_id][str(doc["id"])] = ArmInfo(
                weight=float(weight) if isinstance(weight, int | float) else None,
                targeted=_targeted(doc),
            )
    return arms


def _default_id(docs: Sequence[Mapping[str, Any]]) -> str | None:
    marked = [d for d in docs if d.get("default") is True]
    if marked:
        return _str_id(marked[0])
    plain = [d for d in docs if not _targeted(d) and not d.get("schedule")]
    return _str_id(plain[0]) if plain else (_str_id(docs[-1]) if docs else None)


def page_experiments(blocks: Sequence[Any]) -> list[tuple[str, Experiment]]:
    """Every valid experiment the page's blocks define, with the path of its definition."""
    variants = _variant_docs(blocks)
    arms = _page_arms(variants)
    found: list[tuple[str, Experiment]] = []
    for index, block in enumerate(blocks):
        block_id = _str_id(block)
        if block_id is None or not isinstance(block, Mapping):
            continue
        for position, variant in enumerate(block.get("variants") or ()):
            if isinstance(variant, Mapping) and isinstance(variant.get("experiment"), Mapping):
                where = f"blocks[{index}].variants[{position}].experiment"
                experiment, _ = compile_experiment(variant["experiment"], block_id, arms)
                if experiment is not None:
                    found.append((where, experiment))
    return found


def _check_experiments(
    out: _Collector, blocks: Sequence[Any], now: datetime
) -> dict[str, frozenset[str]]:
    """Findings in the page's experiment definitions; returns the variants only they show."""
    variants = _variant_docs(blocks)
    arms = _page_arms(variants)
    valid: list[Experiment] = []
    reserved: dict[str, frozenset[str]] = {}
    keys: dict[str, str] = {}
    broken = {
        problem.path.split(".experiment", 1)[0] + ".experiment"
        for index, block in enumerate(blocks)
        for problem in check_block(block, f"blocks[{index}]")
        if ".experiment" in problem.path
    }
    for index, block in enumerate(blocks):
        block_id = _str_id(block)
        if block_id is None or not isinstance(block, Mapping):
            continue
        for position, variant in enumerate(block.get("variants") or ()):
            if not isinstance(variant, Mapping) or not isinstance(
                variant.get("experiment"), Mapping
            ):
                continue  # a missing field, or the schema check reports the wrong type
            where = f"blocks[{index}].variants[{position}].experiment"
            variant_id = _str_id(variant)
            experiment, problems = compile_experiment(variant["experiment"], block_id, arms)
            if experiment is None:
                # Ignored, but its treatments stay out of normal selection (as when parsed).
                for claimed_block, claimed in claimed_treatments(
                    variant["experiment"], block_id
                ).items():
                    reserved[claimed_block] = reserved.get(claimed_block, frozenset()) | claimed
            if where in broken:
                continue  # the schema check reports what is wrong with it
            for problem in problems:
                path = where if problem.path in ("", ROOT) else f"{where}.{problem.path}"
                out.add(
                    problem.code,
                    path,
                    problem.message,
                    "see docs/experiments.md",
                    block=block_id,
                    variant=variant_id,
                )
            if experiment is None:
                continue
            if experiment.key in keys:
                out.add(
                    "experiment.duplicate-key",
                    f"{where}.key",
                    f"experiment {experiment.key!r} is also defined at {keys[experiment.key]}",
                    "give every experiment its own key",
                    block=block_id,
                    variant=variant_id,
                )
                continue
            keys[experiment.key] = where
            if (
                experiment.status == "running"
                and experiment.end is not None
                and experiment.end <= now
            ):
                out.add(
                    "experiment.ended",
                    f"{where}.end",
                    f"experiment {experiment.key!r} ended on {experiment.end.isoformat()} "
                    "but is still `running`: it enrolls nobody",
                    "set `status: stopped` (and a `winner` to ship one)",
                    block=block_id,
                    variant=variant_id,
                )
            for factor_block, treatments in experiment.treatments().items():
                default = _default_id(variants.get(factor_block, []))
                if default in treatments:
                    out.add(
                        "experiment.default-arm",
                        where,
                        f"the default variant {default!r} of block {factor_block!r} is a "
                        f"treatment of {experiment.key!r}: visitors outside the experiment "
                        "would see it",
                        "make the control (the first variation) the block's default",
                        block=block_id,
                        variant=variant_id,
                    )
            for other in valid:
                if overlapping(other, experiment):
                    out.add(
                        "experiment.overlap",
                        where,
                        f"experiments {other.key!r} and {experiment.key!r} share a block and "
                        "may enroll the same visitor: the first one listed wins it",
                        "give both the same `namespace` with disjoint ranges",
                        block=block_id,
                        variant=variant_id,
                    )
            valid.append(experiment)
    for block_id, treatments in treatment_variants(valid).items():
        reserved[block_id] = reserved.get(block_id, frozenset()) | treatments
    return reserved


def lint_experiment_keys(pages: Mapping[str, Any]) -> list[Finding]:
    """Findings for an experiment key defined differently on two pages (slug → document)."""
    seen: dict[str, tuple[str, Experiment]] = {}
    findings: list[Finding] = []
    for slug, document in pages.items():
        blocks = document.get("blocks") if isinstance(document, Mapping) else None
        if not isinstance(blocks, list):
            continue
        on_this_page: set[str] = set()
        for where, experiment in page_experiments(blocks):
            if experiment.key in on_this_page:
                continue  # `experiment.duplicate-key` reports it
            on_this_page.add(experiment.key)
            first = seen.get(experiment.key)
            if first is None:
                seen[experiment.key] = (slug, experiment)
                continue
            if signature(first[1]) != signature(experiment):
                out = _Collector(slug)
                out.add(
                    "experiment.conflict",
                    where,
                    f"experiment {experiment.key!r} is defined differently on page "
                    f"{first[0]!r}: one key, one experiment",
                    "make the definitions identical, or rename one",
                    block=experiment.defined_in,
                )
                findings.extend(out.findings)
    return findings


def malformed_page(slug: str, path: str, message: str) -> Finding:
    """The finding for a page the CMS adapter could not read at all."""
    return Finding(
        "error",
        "page.malformed",
        slug,
        None,
        None,
        path or "(page)",
        message,
        "fix the page's structure; see docs/content.md",
    )


def lint_audiences(audiences: Mapping[str, Audience]) -> list[Finding]:
    """Findings in the audience definitions: bad conditions, unknown references, cycles."""
    out = _Collector("")
    for name in sorted(audiences):
        audience = audiences[name]
        path = f"audiences.{name}"
        for problem in audience.condition.problems:
            where = f"{path}.condition"
            if problem.path != ROOT:
                where += f".{problem.path}"
            code = _condition_code(problem.path, problem.message)
            out.add(code, where, problem.message, "see the condition syntax in docs/editors.md")
        _check_audiences(out, list(audience.audiences), f"{path}.audiences", audiences, None, None)
    cycle = find_cycle({name: a.audiences for name, a in audiences.items()})
    if cycle is not None:
        out.add(
            "audience.cycle",
            f"audiences.{cycle[0]}.audiences",
            "audiences reference each other in a cycle: " + " → ".join(cycle),
            "remove one of the references",
        )
    return out.findings


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """How many errors and warnings."""
    errors = sum(1 for f in findings if f.severity == "error")
    return {"errors": errors, "warnings": len(findings) - errors}
