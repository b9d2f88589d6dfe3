"""Strawberry permission classes for operations that need a key."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from delivery.auth import Permission
from delivery.errors import Forbidden, Unauthenticated
from resolvers.context import GraphQLContext


class _Requires(BasePermission):
    permission: Permission

    def has_permission(self, source: Any, info: Info[GraphQLContext, None], **kwargs: Any) -> bool:
        """Allow the request, or raise an error that says which key is missing."""
        # Raising (rather than setting self.message) keeps the shared permission
        # instance free of per-request state.
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(
                f"This operation needs a key with the '{self.permission}' permission: "
                "send Authorization: Bearer <key>."
            )
        if not principal.allows(self.permission):
            raise Forbidden(f"A {principal.kind} key does not allow '{self.permission}'.")
        return True


class IsAdmin(_Requires):
    """Requires an admin key."""

    permission = Permission.ADMIN


class CanPreview(_Requires):
    """Requires a preview token (or an admin key)."""

    permission = Permission.PREVIEW


class CanIngest(_Requires):
    """Requires a publishable or admin key."""

    permission = Permission.INGEST
