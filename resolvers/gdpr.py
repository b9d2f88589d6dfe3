"""Admin GraphQL for GDPR requests: export and erase a visitor."""

from __future__ import annotations

from typing import cast

import strawberry
from strawberry.scalars import JSON

from profiles.gdpr import erase_subject, export_subject
from resolvers.permissions import IsAdmin
from resolvers.query import TesseraInfo, jsonable


def exportable(value: object) -> object:
    """Stored documents as JSON: dates as ISO 8601, ObjectIds and other BSON as strings."""
    value = jsonable(value)
    if isinstance(value, dict):
        return {key: exportable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exportable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@strawberry.type(description="The outcome of `eraseVisitor` (personal data is not echoed).")
class EraseResult:
    erased: int = strawberry.field(description="Documents deleted (0 when already erased).")
    deleted: JSON = strawberry.field(description="Documents deleted per collection.")
    audit_id: str = strawberry.field(description="The audit record of this erasure.")


@strawberry.type
class GdprQuery:
    @strawberry.field(
        description="Everything held about a visitor or user id (admin key); null if nothing.",
        permission_classes=[IsAdmin],
    )
    async def export_visitor(self, info: TesseraInfo, id: strawberry.ID) -> JSON | None:
        """Profile, aliases, identities, events, exposures and consent history."""
        services = info.context.services
        if services.exposures is not None:
            # Page views still queued here are data held about the visitor too.
            await services.exposures.flush()
        exported = await export_subject(services.store.collection.database, str(id))
        return None if exported is None else cast(JSON, exportable(exported))


@strawberry.type
class GdprMutation:
    @strawberry.mutation(
        description="Delete everything held about a visitor or user id (admin key); idempotent.",
        permission_classes=[IsAdmin],
    )
    async def erase_visitor(self, info: TesseraInfo, id: strawberry.ID) -> EraseResult:
        """Erase the subject and leave an audit record without personal data."""
        services = info.context.services
        if services.exposures is not None:
            # Exposures still queued here would otherwise be written after the erasure.
            await services.exposures.flush()
        if services.sticky is not None:
            # Likewise a queued experiment assignment, which would recreate the profile.
            await services.sticky.flush()
        result = await erase_subject(services.store.collection.database, str(id), services.clock())
        return EraseResult(
            erased=int(result["erased"]),
            deleted=cast(JSON, result["deleted"]),
            audit_id=str(result["auditId"]),
        )
