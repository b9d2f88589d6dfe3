"""API keys: who may ingest events, preview drafts or administer Tessera.

Three kinds of secret, each from configuration as a comma-separated list:

- `PUBLISHABLE_KEYS`: may live in a browser; allow event ingestion only;
- `PREVIEW_TOKENS`: let editors preview pages (drafts, simulated visitors);
- `ADMIN_KEYS`: everything.

Clients send `Authorization: Bearer <key>` (beacons that cannot set headers
may use a `key` query parameter where an endpoint allows it). Keys are
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    """What a key allows."""

    INGEST = "ingest"
    PREVIEW = "preview"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid key identifies."""

    kind: str  # "admin", "preview" or "publishable"
    permissions: frozenset[Permission]

    def allows(self, permission: Permission) -> bool:
        """Whether this caller holds `permission`."""
        return permission in self.permissions


ADMIN = Principal("admin", frozenset(Permission))
PREVIEWER = Principal("preview", frozenset({Permission.PREVIEW}))
PUBLISHABLE = Principal("publishable", frozenset({Permission.INGEST}))


class KeyRing:
    """The configured keys; `authenticate` maps a presented key to its principal."""

    def __init__(
        self,
        *,
        admin: Iterable[str] = (),
        preview: Iterable[str] = (),
        publishable: Iterable[str] = (),
    ) -> None:
        # Most privileged first, so a key configured twice gets the larger role.
        self._keys: list[tuple[bytes, Principal]] = [
            *((key.encode(), ADMIN) for key in admin if key),
            *((key.encode(), PREVIEWER) for key in preview if key),
            *((key.encode(), PUBLISHABLE) for key in publishable if key),
        ]

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal for `presented`, or None if it is missing or unknown."""
        if not presented:
            return None
        candidate = presented.encode()
        found: Principal | None = None
        for key, principal in self._keys:
            # Compare against every key so timing does not reveal which matched.
            if hmac.compare_digest(candidate, key) and found is None:
                found = principal
        return found


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def split_keys(value: str | None) -> tuple[str, ...]:
    """Keys from a comma-separated configuration value (blanks dropped)."""
    if not value:
        return ()
    return tuple(key.strip() for key in value.split(",") if key.strip())
