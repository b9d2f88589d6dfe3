"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

`PERSISTED_QUERIES` picks the mode:

- `apq` (default): a client may send `extensions.persistedQuery = {version: 1,
  sha256Hash}` without the query. A known hash runs its query; an unknown one
  answers `PersistedQueryNotFound` (`extensions.code`
  `PERSISTED_QUERY_NOT_FOUND`), so Apollo's link retries with the query, which
  is registered once it parses and validates. A query whose SHA-256 is not the
  hash sent is refused. Registrations live in the shared cache (`CACHE_URL`),
  so every replica knows them.
- `trusted`: only documents of the manifest (`PERSISTED_QUERIES_MANIFEST`, as
  GraphQL Code Generator's `persisted-documents.json`, keys `<hex>` or
  `sha256:<hex>`, or Apollo's persisted query manifest) run, by hash or by
  identical text; admin keys are exempt.
- `off`: a hash is answered `PersistedQueryNotSupported`, so clients send
  full queries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

logger = logging.getLogger(__name__)

Mode = Literal["apq", "trusted", "off"]
#: Registered queries expire from a shared store after a day without use.
TTL_SECONDS = 86_400
_SHA256_PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class PersistedQueryError(Exception):
    """The persisted-query part of a request cannot be honoured; `code` says why."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: HTTP status for `application/json` clients (Apollo reads errors either way).
        self.status = status


class QueryStore(Protocol):
    """Where registered queries are kept (process memory or the shared cache)."""

    async def get(self, digest: str) -> str | None:
        """The query registered under `digest`, if any."""

    async def set(self, digest: str, query: str) -> None:
        """Register `query` under `digest`."""


class MemoryQueryStore:
    """A bounded LRU in this process: beyond `maxsize` queries or `max_chars` the oldest go.

    The character bound matters: a valid query may carry a string literal of
    almost the whole body limit, and 10,000 of them would hold 600 MB.
    """

    def __init__(self, maxsize: int = 10_000, max_chars: int = 16 * 1024 * 1024) -> None:
        self.maxsize = maxsize
        self.max_chars = max_chars
        self._items: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, digest: str) -> str | None:
        """The query registered under `digest`, if any."""
        query = self._items.get(digest)
        if query is not None:
            self._items.move_to_end(digest)
        return query

    async def set(self, digest: str, query: str) -> None:
        """Register `query` under `digest`."""
        previous = self._items.pop(digest, None)
        if previous is not None:
            self._chars -= len(previous)
        self._items[digest] = query
        self._chars += len(query)
        while len(self._items) > self.maxsize or self._chars > self.max_chars:
            _, evicted = self._items.popitem(last=False)
            self._chars -= len(evicted)


class SharedQueryStore:
    """The shared aiocache backend (Redis across replicas), under the `apq:` prefix.

    A hash names one query forever, so what this replica looked up or
    registered is also kept in process (`local`): a request by hash then
    needs no Redis round trip, and no invalidation can make the copy wrong.
    """

    def __init__(
        self, cache: Any, ttl: int = TTL_SECONDS, local: MemoryQueryStore | None = None
    ) -> None:
        self.cache = cache
        self.ttl = ttl
        self.local = local if local is not None else MemoryQueryStore(1_000, 4 * 1024 * 1024)

    async def get(self, digest: str) -> str | None:
        """The query registered under `digest`, if any (None when the cache fails)."""
        query = await self.local.get(digest)
        if query is not None:
            return query
        try:
            value = await self.cache.get(f"apq:{digest}")
        except Exception as exc:  # a cache outage costs a retry with the full query
            logger.warning("persisted query lookup failed: %s", exc)
            return None
        if not isinstance(value, str):
            return None
        await self.local.set(digest, value)
        return value

    async def set(self, digest: str, query: str) -> None:
        """Register `query` under `digest` (best effort)."""
        await self.local.set(digest, query)
        try:
            await self.cache.set(f"apq:{digest}", query, ttl=self.ttl)
        except Exception as exc:
            logger.warning("persisted query registration failed: %s", exc)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The query to run, and the hash to register it under once it validates."""

    query: str | None
    register: str | None = None


def sha256_hex(query: str) -> str:
    """The APQ hash of a query text."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """Hash → document from a persisted-documents JSON file (two common formats)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"PERSISTED_QUERIES_MANIFEST: cannot read {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        # Apollo's persisted query manifest: {"format", "version", "operations": [{id, body}]}.
        pairs = [
            (op.get("id"), op.get("body")) for op in data["operations"] if isinstance(op, dict)
        ]
    elif isinstance(data, dict):
        # GraphQL Code Generator's client preset: {"<hash>": "<document>"}.
        pairs = list(data.items())
    else:
        raise ValueError(f"PERSISTED_QUERIES_MANIFEST: {path} is not a manifest object")
    manifest: dict[str, str] = {}
    for digest, body in pairs:
        if not isinstance(digest, str) or not isinstance(body, str):
            raise ValueError(f"PERSISTED_QUERIES_MANIFEST: {path}: ids and bodies must be strings")
        manifest[_manifest_key(path, digest)] = body
    return manifest


def _manifest_key(path: Path, key: str) -> str:
    """The bare SHA-256 hex a client sends for a manifest key (`<hex>` or `sha256:<hex>`)."""
    # GraphQL Code Generator writes the GraphQL-over-HTTP identifier `sha256:<hex>`.
    bare = key[len(_SHA256_PREFIX) :] if key.lower().startswith(_SHA256_PREFIX) else key
    if not _SHA256_HEX.fullmatch(bare):
        # A client sends only SHA-256 hashes, so such an entry could never match.
        raise ValueError(
            f"PERSISTED_QUERIES_MANIFEST: {path}: the key {key[:80]!r} is not a SHA-256 hex "
            "digest (GraphQL Code Generator: set persistedDocuments.hashAlgorithm to 'sha256')"
        )
    return bare.lower()


def configured_manifest(mode: Mode, path: Path | None) -> dict[str, str] | None:
    """The manifest `PERSISTED_QUERIES_MANIFEST` names, read now: a bad one stops start-up."""
    manifest = load_manifest(path) if path is not None else None
    if mode == "trusted" and not manifest:
        raise ValueError("PERSISTED_QUERIES=trusted needs PERSISTED_QUERIES_MANIFEST")
    return manifest


class PersistedQueries:
    """Turn a request's `query` and `extensions` into the query to execute."""

    def __init__(
        self, mode: Mode, store: QueryStore | None = None, manifest: Mapping[str, str] | None = None
    ) -> None:
        if mode == "trusted" and not manifest:
            raise ValueError("PERSISTED_QUERIES=trusted needs PERSISTED_QUERIES_MANIFEST")
        self.mode = mode
        self.store = store or MemoryQueryStore()
        self.manifest = dict(manifest or {})
        self._trusted_bodies = {sha256_hex(body) for body in self.manifest.values()}

    async def resolve(
        self, query: str | None, extensions: Mapping[str, Any] | None, *, exempt: bool
    ) -> Resolved:
        """The query to run; PersistedQueryError when the request cannot be honoured."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if (
                self.mode == "trusted"
                and not exempt
                and query is not None
                and sha256_hex(query) not in self._trusted_bodies
            ):
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    "This gateway runs only trusted documents: send the hash of an "
                    "operation in its manifest.",
                    status=400,
                )
            return Resolved(query)
        if self.mode == "off":
            raise PersistedQueryError(
                "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported", status=400
            )
        digest = _digest(persisted)
        if query is not None:
            if sha256_hex(query) != digest:
                raise PersistedQueryError(
                    "BAD_REQUEST",
                    "extensions.persistedQuery.sha256Hash: the provided sha256Hash does not "
                    "match the query",
                    status=400,
                )
            if self.mode == "trusted" and not exempt and digest not in self._trusted_bodies:
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    "This gateway runs only trusted documents: this one is not in its manifest.",
                    status=400,
                )
            known = digest in self.manifest or digest in self._trusted_bodies
            return Resolved(query, register=None if known or self.mode != "apq" else digest)
        stored = self.manifest.get(digest)
        if stored is None and self.mode == "apq":
            stored = await self.store.get(digest)
        if stored is None:
            if self.mode == "trusted" and not exempt:
                raise PersistedQueryError(
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    "PersistedQueryNotInList: the hash names no operation in the manifest.",
                    status=400,
                )
            raise PersistedQueryError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return Resolved(stored)

    async def register(self, digest: str, query: str) -> None:
        """Keep `query` under `digest` (after it parsed and validated)."""
        await self.store.set(digest, query)


def _digest(persisted: object) -> str:
    if not isinstance(persisted, Mapping):
        raise PersistedQueryError(
            "BAD_REQUEST", "extensions.persistedQuery: must be an object", status=400
        )
    if persisted.get("version") != 1:
        raise PersistedQueryError(
            "BAD_REQUEST",
            "extensions.persistedQuery.version: only version 1 is supported",
            status=400,
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or len(digest) != 64:
        raise PersistedQueryError(
            "BAD_REQUEST",
            "extensions.persistedQuery.sha256Hash: must be a 64-character hex SHA-256",
            status=400,
        )
    return digest.lower()
