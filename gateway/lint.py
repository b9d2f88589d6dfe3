"""`python -m gateway lint` and the content walk behind it (and `contentHealth`).

Reads every page from the configured CMS (drafts too with `--drafts`), lints
each one and the audience definitions, and prints one finding per problem.
Exit status: 0 when clean or warnings only, 1 when there are errors, 2 when
the content or the audiences could not be read at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blocks.audiences import Audience
from blocks.lint import (
    Finding,
    lint_audiences,
    lint_experiment_keys,
    lint_page,
    malformed_page,
    summary,
)
from cms_adapters.base import CMSAdapter
from cms_adapters.errors import CMSError, MalformedContent
from gateway.cli_args import iso_instant
from profiles.audiences import AudienceFileError, audiences_from_file


async def lint_content(
    adapter: CMSAdapter,
    audiences: Mapping[str, Audience],
    now: datetime,
    *,
    drafts: bool = False,
    slug: str | None = None,
) -> list[Finding]:
    """Every finding in the CMS's pages (or the page `slug`) and in the audience definitions."""
    findings = lint_audiences(audiences)
    slugs = [slug] if slug is not None else await adapter.list_pages()
    documents: dict[str, Any] = {}
    for page in slugs:
        try:
            parsed = await adapter.fetch_page(page, preview=drafts)
        except MalformedContent as exc:
            message = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
            findings.append(malformed_page(page, exc.field, message))
            continue
        documents[page] = parsed.document
        findings.extend(lint_page(page, parsed.document, audiences, now))
    # One experiment key, one definition, whichever pages show its blocks.
    findings.extend(lint_experiment_keys(documents))
    return findings


def report(findings: list[Finding], fmt: str) -> str:
    """The findings as text for people or JSON for CI and CMS extensions."""
    counts = summary(findings)
    if fmt == "json":
        return json.dumps(
            {**counts, "findings": [f.as_dict() for f in findings]}, indent=2, ensure_ascii=False
        )
    lines = [str(f) for f in findings]
    lines.append(f"{counts['errors']} error(s), {counts['warnings']} warning(s)")
    return "\n".join(lines)


async def _audiences(args: argparse.Namespace, settings: Any) -> tuple[dict[str, Audience], str]:
    from gateway.settings import DEMO_DIR

    if args.audiences:
        path = Path(args.audiences)
        return audiences_from_file(path), str(path)
    if settings.mongodb_uri is not None:
        from pymongo import AsyncMongoClient

        from profiles.audiences import AudienceRepository

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_uri.get_secret_value(), serverSelectionTimeoutMS=5000
        )
        try:
            loaded = await AudienceRepository(client[settings.mongodb_database]).load()
        finally:
            await client.close()
        return {a.name: a for a in loaded}, "MongoDB"
    path = DEMO_DIR / "audiences.yaml"
    return audiences_from_file(path), f"{path} (the embedded default's seed)"


async def _run(args: argparse.Namespace) -> int:
    from gateway.app import build_adapter
    from gateway.settings import Settings

    settings = Settings()
    if args.content_dir:
        settings = settings.model_copy(update={"content_dir": Path(args.content_dir)})
    try:
        audiences, source = await _audiences(args, settings)
    except (AudienceFileError, OSError) as exc:
        print(f"lint: cannot read audiences: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the database is down or refuses us
        print(f"lint: cannot read audiences from MongoDB: {exc}", file=sys.stderr)
        return 2
    print(f"lint: audiences from {source}", file=sys.stderr)
    async with build_adapter(settings) as adapter:
        try:
            now = args.now or datetime.now(UTC)
            findings = await lint_content(adapter, audiences, now, drafts=args.drafts)
        except CMSError as exc:
            print(f"lint: cannot read the content: {exc}", file=sys.stderr)
            return 2
    print(report(findings, args.format))
    return 1 if summary(findings)["errors"] else 0


def run_lint(args: argparse.Namespace) -> int:
    """The `lint` command."""
    # Parsing logs each bad condition as a warning; the report already names it.
    logging.disable(logging.WARNING)
    try:
        return asyncio.run(_run(args))
    finally:
        logging.disable(logging.NOTSET)


def add_lint_command(commands: Any) -> None:
    """Register `lint` on the CLI's subcommands."""
    lint = commands.add_parser("lint", help="check every page, block, variant and audience")
    lint.add_argument("--format", choices=("text", "json"), default="text")
    lint.add_argument("--content-dir", help="content folder (default: $CONTENT_DIR)")
    lint.add_argument("--audiences", help="audience file (YAML/JSON) instead of MongoDB")
    lint.add_argument("--drafts", action="store_true", help="lint draft content where it exists")
    lint.add_argument(
        "--now",
        type=iso_instant,
        help="lint as of this ISO 8601 time (e.g. a launch date) instead of now",
    )
    lint.set_defaults(handler=run_lint)
