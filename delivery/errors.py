"""Errors the API reports to clients, each with a stable `extensions.code`.

    PublicError                  BAD_REQUEST
    ├── PageNotFound             PAGE_NOT_FOUND
    ├── BadUserInput             BAD_USER_INPUT
    ├── ContentUnavailable       CONTENT_UNAVAILABLE
    ├── ProfileUnavailable       PROFILE_UNAVAILABLE
    ├── Unauthenticated          UNAUTHENTICATED
    └── Forbidden                FORBIDDEN

They are plain exceptions: GraphQL copies an error's `extensions` into the
response, and the schema never masks a `PublicError`.
"""

from __future__ import annotations

from typing import Any


class PublicError(Exception):
    """An error whose message is meant for the client (never masked)."""

    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, Any]:
        """What GraphQL puts under `extensions` for this error."""
        return {"code": self.code}


class PageNotFound(PublicError):
    """No page has the requested slug."""

    code = "PAGE_NOT_FOUND"


class BadUserInput(PublicError):
    """An argument is well-typed but not acceptable (bad locale, bad country...)."""

    code = "BAD_USER_INPUT"


class ContentUnavailable(PublicError):
    """The CMS cannot provide the page right now."""

    code = "CONTENT_UNAVAILABLE"


class ProfileUnavailable(PublicError):
    """The profile store cannot take a write right now."""

    code = "PROFILE_UNAVAILABLE"


class Unauthenticated(PublicError):
    """No key, or a key Tessera does not know."""

    code = "UNAUTHENTICATED"


class Forbidden(PublicError):
    """A valid key that does not allow this operation."""

    code = "FORBIDDEN"
