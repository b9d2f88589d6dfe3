"""Admin GraphQL for audiences: list, create, update, delete and bulk import.

Every field needs an admin key (`ADMIN_KEYS`, `Authorization: Bearer <key>`).
Resolvers are thin: the repository checks definitions (conditions, references,
cycles) and the catalog is refreshed so the change applies at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Any, TypeVar, cast

import strawberry
from pymongo.errors import PyMongoError
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery.errors import BadUserInput, PublicError
from profiles.audiences import (
    AudienceError,
    AudienceFileError,
    AudienceNotFound,
    parse_audience_file,
)
from resolvers.context import GraphQLContext
from resolvers.permissions import IsAdmin

T = TypeVar("T")
AdminInfo = Info[GraphQLContext, None]


class NotFound(PublicError):
    """The named thing does not exist."""

    code = "NOT_FOUND"


class StoreUnavailable(PublicError):
    """MongoDB cannot take the change right now."""

    code = "STORE_UNAVAILABLE"


@strawberry.enum(description="Whether a visitor must be in any or all of the audiences.")
class AudienceMatch(Enum):
    ANY = "any"
    ALL = "all"


@strawberry.type(description="A named targeting condition editors reference from variants.")
class Audience:
    name: str
    description: str
    condition: JSON = strawberry.field(description="A targeting condition document.")
    audiences: list[str] = strawberry.field(description="Audiences this one builds on.")
    audience_match: AudienceMatch

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Audience:
        """The GraphQL view of a stored definition."""
        return cls(
            name=str(document["_id"]),
            description=str(document.get("description") or ""),
            condition=cast(JSON, document.get("condition") or {}),
            audiences=list(document.get("audiences") or []),
            audience_match=AudienceMatch(document.get("audienceMatch", "any")),
        )


@strawberry.input(description="An audience definition.")
class AudienceInput:
    name: str
    description: str = ""
    condition: JSON | None = strawberry.field(
        default=None, description="Targeting condition; none means everyone (before references)."
    )
    audiences: list[str] | None = strawberry.field(
        default=None, description="Other audiences the visitor must also be in (any or all)."
    )
    audience_match: AudienceMatch = AudienceMatch.ANY

    def as_document(self) -> dict[str, Any]:
        """The input in the bulk-file form the repository checks."""
        return {
            "name": self.name,
            "description": self.description,
            "condition": self.condition if self.condition is not None else {},
            "audiences": self.audiences or [],
            "audienceMatch": self.audience_match.value,
        }


@strawberry.type(description="The outcome of `importAudiences`.")
class ImportResult:
    imported: int
    audiences: list[Audience]


async def _guard(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except AudienceNotFound as exc:
        raise NotFound(str(exc)) from None
    except (AudienceError, AudienceFileError) as exc:
        raise BadUserInput(str(exc)) from None
    except PyMongoError:
        raise StoreUnavailable("MongoDB is unavailable; the audiences were not changed.") from None


async def _all(info: AdminInfo) -> list[Audience]:
    repository = info.context.services.audiences.repository
    documents = await _guard(repository.documents)
    return [Audience.from_document(d) for d in documents.values()]


@strawberry.type
class AudienceQuery:
    @strawberry.field(
        description="Every audience definition (admin key required).",
        permission_classes=[IsAdmin],
    )
    async def audiences(self, info: AdminInfo) -> list[Audience]:
        """List stored audiences."""
        return await _all(info)


@strawberry.type
class AudienceMutation:
    @strawberry.mutation(description="Create an audience (admin).", permission_classes=[IsAdmin])
    async def create_audience(self, info: AdminInfo, audience: AudienceInput) -> Audience:
        """Create an audience; refuses duplicates, bad conditions, unknown references, cycles."""
        catalog = info.context.services.audiences
        document = await _guard(lambda: catalog.repository.create(audience.as_document()))
        await catalog.refresh()
        return Audience.from_document(document)

    @strawberry.mutation(
        description="Replace (and possibly rename) an audience (admin).",
        permission_classes=[IsAdmin],
    )
    async def update_audience(
        self, info: AdminInfo, name: str, audience: AudienceInput
    ) -> Audience:
        """Replace the audience `name` with `audience`."""
        catalog = info.context.services.audiences
        document = await _guard(lambda: catalog.repository.update(name, audience.as_document()))
        await catalog.refresh()
        return Audience.from_document(document)

    @strawberry.mutation(description="Delete an audience (admin).", permission_classes=[IsAdmin])
    async def delete_audience(self, info: AdminInfo, name: str) -> bool:
        """Delete the audience `name` unless another audience references it."""
        catalog = info.context.services.audiences
        await _guard(lambda: catalog.repository.delete(name))
        await catalog.refresh()
        return True

    @strawberry.mutation(
        description="Load audiences in bulk from a YAML or JSON file's text (admin). "
        "`replace: true` also deletes every audience the file does not define.",
        permission_classes=[IsAdmin],
    )
    async def import_audiences(
        self, info: AdminInfo, document: str, replace: bool = False
    ) -> ImportResult:
        """Upsert every audience of the file, all checked together first."""
        catalog = info.context.services.audiences

        async def run() -> int:
            documents = parse_audience_file(document, "document")
            return await catalog.repository.import_documents(documents, replace_all=replace)

        imported = await _guard(run)
        await catalog.refresh()
        return ImportResult(imported=imported, audiences=await _all(info))
