"""The content linter: the demo lints clean, the broken copy yields every rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks.audiences import Audience
from blocks.lint import RULES, Finding, lint_audiences, lint_page
from cms_adapters.filesystem import FilesystemAdapter
from gateway.cli import main
from gateway.lint import lint_content
from gateway.settings import DEMO_CONTENT_DIR, DEMO_DIR
from profiles.audiences import audiences_from_file

BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "broken_content"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _lint(root: Path, audiences_file: Path) -> list[Finding]:
    async with FilesystemAdapter(root) as cms:
        return await lint_content(cms, audiences_from_file(audiences_file), NOW)


@pytest.fixture(scope="module")
async def broken() -> list[Finding]:
    return await _lint(BROKEN, BROKEN / "audiences.yaml")


async def test_the_demo_content_lints_clean() -> None:
    assert await _lint(DEMO_CONTENT_DIR, DEMO_DIR / "audiences.yaml") == []


async def test_the_broken_copy_triggers_every_rule(broken: list[Finding]) -> None:
    assert {f.code for f in broken} == set(RULES)


# One row per rule: where the broken fixture has it and what the message says.
EXPECTED = [
    ("page.malformed", "broken-structure", None, None, "blocks", "a page needs a list of blocks"),
    (
        "schema.typo",
        "home",
        "home-hero",
        "typo-field",
        "blocks[1].variants[1].audience",
        "unknown field 'audience': probably a typo of 'audiences'",
    ),
    (
        "schema.type",
        "home",
        "home-hero",
        "wrong-type",
        "blocks[1].variants[2].priority",
        "must be an integer, not string",
    ),
    (
        "schema.unknown-field",
        "home",
        "home-hero",
        "unknown-field",
        "blocks[1].variants[3].colour",
        "unknown field 'colour'",
    ),
    (
        "schema.required",
        "home",
        "home-hero",
        None,
        "blocks[1].variants[4]",
        "'id' is a required property",
    ),
    (
        "schema.invalid",
        "home",
        "home-hero",
        "bad-match",
        "blocks[1].variants[5].audienceMatch",
        "'some' is not one of 'any', 'all'",
    ),
    (
        "fields.invalid",
        "home",
        "home-hero",
        "no-heading",
        "blocks[1].variants[6].fields.heading",
        "Field required",
    ),
    (
        "audience.unknown",
        "home",
        "home-hero",
        "vip",
        "blocks[1].variants[7].audiences[0]",
        "unknown audience 'high_valu'",
    ),
    (
        "audience.cycle",
        "",
        None,
        None,
        "audiences.devoted.audiences",
        "audiences reference each other in a cycle: devoted → loyal → devoted",
    ),
    (
        "condition.invalid",
        "home",
        "home-cta",
        "bad-or",
        "blocks[2].variants[1].condition.$or",
        "'$or' expects a list of conditions, got object",
    ),
    (
        "condition.unknown-operator",
        "home",
        "home-cta",
        "bad-operator",
        "blocks[2].variants[2].condition.cart.value.$gtee",
        "unknown operator '$gtee' (did you mean '$gte'?)",
    ),
    (
        "condition.regex",
        "home",
        "home-cta",
        "bad-regex",
        "blocks[2].variants[3].condition.referrer.$regex",
        "invalid pattern: unterminated character set",
    ),
    (
        "condition.regex",
        "home",
        "home-cta",
        "slow-regex",
        "blocks[2].variants[4].condition.path.$regex",
        "pattern may backtrack catastrophically",
    ),
    (
        "variant.duplicate-id",
        "home",
        "home-cta",
        "newsletter",
        "blocks[2].variants[5].id",
        "duplicate variant id 'newsletter' (also variants[0])",
    ),
    (
        "block.no-default",
        "home",
        "home-testimonial",
        None,
        "blocks[3].variants",
        "block 'home-testimonial' has no default variant",
    ),
    (
        "block.multiple-defaults",
        "home",
        "home-story",
        None,
        "blocks[4].variants[1].default",
        "variants 'one', 'two' are all marked `default: true`",
    ),
    (
        "condition.private",
        "home",
        "home-cta",
        "private-cart",
        "blocks[2].variants[6].condition",
        "reads the visitor's own cart: every page showing this block is private to its "
        "visitor, and no edge cache can share it",
    ),
    (
        "variant.unreachable",
        "home",
        "home-products",
        "members-new",
        "blocks[5].variants[2]",
        "variant 'members-new' can never be chosen: 'everyone-sees-this' (priority 100) "
        "matches every visitor and wins; it has priority 20",
    ),
    (
        "variant.unreachable",
        "home",
        "home-products",
        "bestsellers",
        "blocks[5].variants[0]",
        "the default is only shown when no other variant is eligible",
    ),
    (
        "schedule.inverted",
        "home",
        "site-banner",
        "inverted",
        "blocks[0].variants[2].schedule.end",
        "the schedule ends (2026-12-20T00:00:00+00:00) before it starts",
    ),
    (
        "schedule.expired",
        "home",
        "site-banner",
        "black-friday-2025",
        "blocks[0].variants[1].schedule.end",
        "the schedule ended on 2025-12-02T00:00:00-05:00",
    ),
    (
        "schedule.timezone",
        "home",
        "site-banner",
        "moon-time",
        "blocks[0].variants[3].schedule.timezone",
        "unknown time zone 'Moon/Tranquility'",
    ),
    (
        "template.syntax",
        "home",
        "home-greeting",
        "broken-template",
        "blocks[6].variants[1].fields.text",
        "the template does not compile (line 1): unexpected end of template",
    ),
    (
        "template.unknown-field",
        "home",
        "home-greeting",
        "typo-template",
        "blocks[6].variants[2].fields.text",
        "the template reads 'visitor.traits.frstName', which is not a profile or request field",
    ),
    (
        "template.syntax",
        "home",
        "home-greeting",
        "deep-template",
        "blocks[6].variants[3].fields.text",
        "the template does not compile (line 1): the template nests expressions or tags more "
        "than 32 levels deep",
    ),
    (
        "template.limit",
        "home",
        "home-greeting",
        "bomb-template",
        "blocks[6].variants[4].fields.text",
        "the template fails in the sandbox: `~` would build more than 8,192 characters",
    ),
    (
        "block.duplicate-id",
        "home",
        "home-greeting",
        None,
        "blocks[7].id",
        "duplicate block id 'home-greeting' (also blocks[6])",
    ),
    (
        "experiment.invalid",
        "experiments",
        "exp-invalid",
        "control",
        "blocks[0].variants[0].experiment.variations[2]",
        "block 'exp-invalid' has no valid variant 'missing'; variants: control, treatment",
    ),
    (
        "experiment.duplicate-key",
        "experiments",
        "exp-duplicate",
        "treatment",
        "blocks[1].variants[1].experiment.key",
        "experiment 'twice' is also defined at blocks[1].variants[0].experiment",
    ),
    (
        "experiment.default-arm",
        "experiments",
        "exp-default",
        "control",
        "blocks[2].variants[1].experiment",
        "the default variant 'treatment' of block 'exp-default' is a treatment of 'default-arm'",
    ),
    (
        "experiment.targeted-arm",
        "experiments",
        "exp-targeted",
        "control",
        "blocks[3].variants[0].experiment.variations",
        "variant 'vip' of block 'exp-targeted' has its own audiences or condition",
    ),
    (
        "experiment.overlap",
        "experiments",
        "exp-overlap",
        "b",
        "blocks[4].variants[1].experiment",
        "experiments 'overlap-a' and 'overlap-b' share a block",
    ),
    (
        "experiment.ended",
        "experiments",
        "exp-ended",
        "control",
        "blocks[5].variants[0].experiment.end",
        "experiment 'ended' ended on 2026-11-01T00:00:00+00:00 but is still `running`",
    ),
    (
        "experiment.conflict",
        "experiments-copy",
        "exp-conflict",
        None,
        "blocks[0].variants[0].experiment",
        "experiment 'shared' is defined differently on page 'experiments'",
    ),
]


@pytest.mark.parametrize(
    ("code", "page", "block", "variant", "path", "message"),
    EXPECTED,
    ids=[f"{row[0]}:{row[4]}" for row in EXPECTED],
)
def test_each_rule_names_the_field_and_the_problem(
    broken: list[Finding],
    code: str,
    page: str,
    block: str | None,
    variant: str | None,
    path: str,
    message: str,
) -> None:
    matches = [f for f in broken if f.code == code and f.path == path]
    assert len(matches) == 1, [str(f) for f in broken if f.code == code]
    finding = matches[0]
    assert (finding.page, finding.block_id, finding.variant_id) == (page, block, variant)
    assert message in finding.message
    assert finding.severity == RULES[code][0]
    assert finding.suggestion


def test_every_rule_is_asserted_above() -> None:
    assert {row[0] for row in EXPECTED} == set(RULES)


def test_suggestions_name_the_likely_intended_value(broken: list[Finding]) -> None:
    by_path = {f.path: f for f in broken}
    assert by_path["blocks[1].variants[1].audience"].suggestion == "rename it to 'audiences'"
    assert by_path["blocks[1].variants[7].audiences[0]"].suggestion == "did you mean 'high_value'?"
    assert "firstName" in by_path["blocks[6].variants[2].fields.text"].suggestion


def test_an_audience_that_matches_everyone_shadows_like_no_targeting() -> None:
    audiences = {"everyone": Audience.from_document({"name": "everyone", "condition": {}})}
    page = {
        "blocks": [
            {
                "id": "b",
                "type": "banner",
                "variants": [
                    {"id": "d", "default": True, "fields": {"text": "x"}},
                    {
                        "id": "all",
                        "audiences": ["everyone"],
                        "priority": 5,
                        "fields": {"text": "y"},
                    },
                    {"id": "late", "condition": {"device": "mobile"}, "fields": {"text": "z"}},
                ],
            }
        ]
    }
    found = {(f.code, f.variant_id) for f in lint_page("p", page, audiences, NOW)}
    assert found == {("variant.unreachable", "d"), ("variant.unreachable", "late")}


def test_audience_conditions_are_linted() -> None:
    audiences = {"bad": Audience.from_document({"name": "bad", "condition": {"x": {"$nope": 1}}})}
    [finding] = lint_audiences(audiences)
    assert finding.code == "condition.unknown-operator"
    assert finding.path == "audiences.bad.condition.x.$nope"


def test_cli_exit_status_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    broken_args = ["--content-dir", str(BROKEN), "--audiences", str(BROKEN / "audiences.yaml")]
    assert main(["lint", "--format", "json", *broken_args]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == sum(1 for f in report["findings"] if f["severity"] == "error")
    first = report["findings"][0]
    assert set(first) == {
        "severity",
        "code",
        "page",
        "blockId",
        "variantId",
        "path",
        "message",
        "suggestion",
    }
    demo_args = [
        "--content-dir",
        str(DEMO_CONTENT_DIR),
        "--audiences",
        str(DEMO_DIR / "audiences.yaml"),
        # Before the demo's Black Friday banner ends, so the schedule is not expired.
        "--now",
        "2026-11-22T12:00:00Z",
    ]
    assert main(["lint", *demo_args]) == 0
    assert capsys.readouterr().out.strip() == "0 error(s), 0 warning(s)"


def test_cli_warnings_only_exit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "p.yaml").write_text(
        "slug: p\ntitle: P\nblocks:\n  - id: b\n    type: banner\n    variants:\n"
        "      - {id: d, fields: {text: x}}\n"
        "      - id: old\n        schedule: {start: '2020-01-01', end: '2020-02-01'}\n"
        "        fields: {text: y}\n",
        encoding="utf-8",
    )
    args = ["lint", "--content-dir", str(tmp_path), "--audiences", str(DEMO_DIR / "audiences.yaml")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[schedule.expired]" in out
    assert "0 error(s), 1 warning(s)" in out


def test_cli_unreadable_audiences_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "audiences.yaml"
    bad.write_text("audiences: [{name: '1bad'}]", encoding="utf-8")
    assert main(["lint", "--audiences", str(bad)]) == 2
    assert "audiences[0].name: '1bad' is not a valid name" in capsys.readouterr().err


def test_equal_priority_shares_the_tier_and_is_reachable() -> None:
    page = {
        "blocks": [
            {
                "id": "b",
                "type": "banner",
                "variants": [
                    {"id": "d", "default": True, "fields": {"text": "x"}},
                    {"id": "first", "priority": 5, "fields": {"text": "y"}},
                    {"id": "second", "priority": 5, "fields": {"text": "z"}},
                    {"id": "lower", "priority": 1, "fields": {"text": "w"}},
                ],
            }
        ]
    }
    found = [(f.code, f.variant_id) for f in lint_page("p", page, {}, NOW)]
    # `second` ties with `first`: the model (or exploration) ranks them. `lower` never
    # wins; each unreachable variant is reported once.
    assert sorted(found) == [("variant.unreachable", "d"), ("variant.unreachable", "lower")]
