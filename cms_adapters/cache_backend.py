"""Open and close the aiocache backend named by `CACHE_URL`.

`memory://` keeps objects as they are; `redis://host:port/db` pickles them
(a `ParsedPage` is not JSON), so the Redis server must be private to Tessera.
aiocache 0.12's Redis backend runs on `redis-py`'s asyncio client (`redis>=4.2`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from aiocache import Cache
from aiocache.serializers import PickleSerializer


def is_redis(url: str) -> bool:
    """True when `url` names a Redis server."""
    return urlparse(url).scheme in ("redis", "rediss")


def open_cache(url: str) -> Any:
    """The aiocache backend for `url` (`memory://` or `redis://...`)."""
    scheme = urlparse(url).scheme
    if scheme not in ("memory", "redis", "rediss"):
        raise ValueError(f"CACHE_URL: unsupported scheme {scheme!r}; use memory:// or redis://")
    if scheme == "rediss":
        url = "redis" + url[len("rediss") :] + ("&" if "?" in url else "?") + "ssl=true"
    cache = Cache.from_url(url)
    if is_redis(url):
        cache.serializer = PickleSerializer()
    else:
        # A dictionary in process does no I/O: aiocache's timeout would only wrap each
        # read in `asyncio.wait_for`, a task per page read.
        cache.timeout = None
    return cache


async def close_cache(cache: Any) -> None:
    """Close the backend's connections (Redis: with `aclose`, not the deprecated `close`)."""
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "aclose"):
        await client.aclose()
    else:
        await cache.close()
