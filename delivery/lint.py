"""The content walk behind `python -m gateway lint` and `contentHealth`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from blocks.audiences import Audience
from blocks.lint import (
    Finding,
    lint_audiences,
    lint_experiment_keys,
    lint_page,
    malformed_page,
)
from cms_adapters.base import CMSAdapter
from cms_adapters.errors import MalformedContent
from delivery.pages import check_slug


async def lint_content(
    adapter: CMSAdapter,
    audiences: Mapping[str, Audience],
    now: datetime,
    *,
    drafts: bool = False,
    slug: str | None = None,
) -> list[Finding]:
    """Every finding in the CMS's pages (or the page `slug`) and in the audience definitions."""
    if slug is not None:
        check_slug(slug)
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
