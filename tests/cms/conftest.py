"""The cache backends every cache test runs against (Redis: the session's server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cms_adapters.cache_backend import close_cache, open_cache

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An empty aiocache backend: in memory, or on the session's redis-server."""
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    backend = open_cache(url)
    await backend.clear()
    yield backend
    await backend.clear()
    await close_cache(backend)


@pytest.fixture
def cms_name() -> str:
    """A CMS name unique to the test, so keys never collide across tests."""
    return f"fake{uuid.uuid4().hex[:8]}"
