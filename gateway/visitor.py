"""Identify the visitor, and the cookies that carry their id and edge key.

The id comes from the `X-Visitor-Id` header (server-side renderers, edge
workers), else the `tsr_vid` cookie (browsers), else a new random id. A new
id is set as a cookie only on a private response (a shareable one carries no
cookie, or an edge cache could not store it); the event beacon also mints
one. `tsr_ek` holds the visitor's edge key (see `delivery.edge_keys`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

from starlette.requests import cookie_parser

from delivery.services import VisitorIdentity

COOKIE_NAME = "tsr_vid"
EDGE_COOKIE = "tsr_ek"
EDGE_HEADER = "X-Tessera-Edge-Key"
HEADER_NAME = "x-visitor-id"
COOKIE_MAX_AGE = 365 * 24 * 3600
#: The edge key follows the visitor's facts, which change: a day, then it is refreshed.
EDGE_COOKIE_MAX_AGE = 24 * 3600
_VISITOR_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INVALID_VISITOR_ID = (
    "X-Visitor-Id: must be 1-128 characters of letters, digits, '.', '_', ':' or '-'."
)


def _cookie_value(raw: str | None) -> str | None:
    # Starlette's lenient parser: one malformed unrelated cookie must not hide ours.
    return cookie_parser(raw).get(COOKIE_NAME) if raw else None


def identify(header: str | None, cookie_header: str | None) -> VisitorIdentity | None:
    """The visitor for these headers; None when the header id is invalid."""
    if header is not None:
        return VisitorIdentity(header, "header") if _VISITOR_ID.fullmatch(header) else None
    cookie = _cookie_value(cookie_header)
    if cookie is not None and _VISITOR_ID.fullmatch(cookie):
        return VisitorIdentity(cookie, "cookie")
    return VisitorIdentity(uuid.uuid4().hex, "new")


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """How Tessera's cookies are set: `Secure` behind HTTPS, `SameSite` for cross-site apps."""

    secure: bool = False
    same_site: Literal["lax", "strict", "none"] = "lax"

    def _attributes(self, max_age: int) -> str:
        # Browsers refuse SameSite=None without Secure.
        secure = self.secure or self.same_site == "none"
        return f"Path=/; Max-Age={max_age}; HttpOnly; SameSite={self.same_site.capitalize()}" + (
            "; Secure" if secure else ""
        )

    def visitor(self, visitor_id: str) -> str:
        """The Set-Cookie value carrying a new visitor id."""
        return f"{COOKIE_NAME}={visitor_id}; {self._attributes(COOKIE_MAX_AGE)}"

    def edge_key(self, key: str) -> str:
        """The Set-Cookie value carrying the visitor's edge key."""
        return f"{EDGE_COOKIE}={key}; {self._attributes(EDGE_COOKIE_MAX_AGE)}"
