"""`contentHealth`: the linter's findings over GraphQL, for CMS UI extensions."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from blocks.lint import RULES, summary
from blocks.lint import Finding as LintFinding
from cms_adapters.errors import CMSError, ContentNotFound
from delivery.errors import ContentUnavailable, PageNotFound
from delivery.lint import lint_content
from resolvers.context import GraphQLContext
from resolvers.permissions import CanPreview


@strawberry.enum(description="`ERROR` fails `python -m gateway lint`; `WARNING` does not.")
class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@strawberry.type(description="One content problem and what to do about it.")
class Finding:
    severity: Severity
    code: str = strawberry.field(description="The rule, e.g. `audience.unknown`.")
    page: str = strawberry.field(description="Page slug; empty for audience definitions.")
    block_id: str | None
    variant_id: str | None
    path: str = strawberry.field(description="The field, e.g. `blocks[1].variants[2].priority`.")
    message: str
    suggestion: str

    @classmethod
    def from_finding(cls, finding: LintFinding) -> Finding:
        """Expose a linter finding."""
        return cls(
            severity=Severity(finding.severity),
            code=finding.code,
            page=finding.page,
            block_id=finding.block_id,
            variant_id=finding.variant_id,
            path=finding.path,
            message=finding.message,
            suggestion=finding.suggestion,
        )


@strawberry.type(description="A linter rule.")
class LintRule:
    code: str
    severity: Severity
    description: str


@strawberry.type(description="Every problem the linter finds in the content and audiences.")
class ContentHealth:
    errors: int
    warnings: int
    findings: list[Finding]
    rules: list[LintRule] = strawberry.field(description="Every rule the linter applies.")


@strawberry.type
class ContentHealthQuery:
    @strawberry.field(
        description="Lint every page, block, variant and audience (preview token required).",
        permission_classes=[CanPreview],
    )
    async def content_health(
        self,
        info: Info[GraphQLContext, None],
        drafts: bool = False,
        slug: Annotated[
            str | None, strawberry.argument(description="Only this page (and the audiences).")
        ] = None,
    ) -> ContentHealth:
        """Run the linter over the configured CMS (drafts too when asked)."""
        services = info.context.services
        audiences = {audience.name: audience for audience in services.audiences.current}
        try:
            findings = await lint_content(
                services.content.adapter, audiences, services.clock(), drafts=drafts, slug=slug
            )
        except ContentNotFound:
            raise PageNotFound(f"No page with slug {slug!r}.") from None
        except CMSError as exc:
            raise ContentUnavailable(f"The content cannot be read: {exc}") from None
        counts = summary(findings)
        return ContentHealth(
            errors=counts["errors"],
            warnings=counts["warnings"],
            findings=[Finding.from_finding(f) for f in findings],
            rules=[
                LintRule(code=code, severity=Severity(severity), description=text)
                for code, (severity, text) in RULES.items()
            ],
        )
