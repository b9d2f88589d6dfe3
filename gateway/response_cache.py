"""Reuse the bytes of `page` responses whose decisions are the same.

For a page-only query the response body is a function of the query, its
variables, the media type, the page content version, the locale served, the
decisions and the rendered templated values: two visitors with the same of
all these correctly share it. The key holds every decision record (variant,
reason, rule, scope, score), not only variant ids. Only bodies are kept:
headers (the edge key, cookies) are computed per request from the same
decision.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from delivery.pages import AssembledPage


@dataclass(frozen=True, slots=True)
class CachedBody:
    """A response body and the media type it was encoded for."""

    body: bytes
    media_type: str


#: Memory the cached bodies and their keys' texts may take together. Entries were
#: bounded in number only: anonymous clients can make a body of about 100 KB per
#: entry (many aliases of a page) under keys of 60 KB queries, some 700 MB in all.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _size(key: Hashable, value: CachedBody) -> int:
    """The entry's bytes: its body and the texts in its key (query, variables)."""
    texts = key if isinstance(key, tuple) else (key,)
    return len(value.body) + sum(len(part) for part in texts if isinstance(part, str))


class ResponseCache:
    """A bounded in-process LRU of page response bodies, with hit and miss counts."""

    def __init__(self, maxsize: int = 4096, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, CachedBody] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        #: What the entries take now (see `_size`).
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> CachedBody | None:
        """The cached body for `key` (counted as a hit or a miss)."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, value: CachedBody) -> None:
        """Keep `value`, evicting the least recently used past `maxsize` or `max_bytes`."""
        size = _size(key, value)
        if size > self.max_bytes // 16:
            return  # one entry must not push out a sixteenth of the others
        self.bytes += size - self._sizes.get(key, 0)
        self._sizes[key] = size
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize or self.bytes > self.max_bytes:
            old, _ = self._items.popitem(last=False)
            self.bytes -= self._sizes.pop(old)

    def __len__(self) -> int:
        return len(self._items)


def response_key(
    query: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    media_type: str,
    pages: Sequence[AssembledPage],
) -> Hashable:
    """Everything a page-only response body depends on."""
    return (
        query,
        operation_name,
        json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), default=str),
        media_type,
        tuple((page.version, page.locale, page.decision, page.templated_values) for page in pages),
    )
