"""Bodies that never finish, stop half way or never end: every route with a body.

Each route reads its body through `BodyLimit`: a body slower than the limit
is a 408, a client that hangs up half way is no error of the gateway's (no
traceback, no 500), and a body past the size limit is a 413 that closes the
connection instead of reading on. Over a real socket (uvicorn), since these
are what the HTTP server and the client do to each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock
from tests.graphql_helpers import INGEST
from tests.hostile.serving import uvicorn_serving

SECRET = "hook-secret"
ROUTES = {
    "graphql": ("/graphql", {}),
    "events": ("/v1/events", INGEST),
    "webhooks": ("/webhooks/filesystem", {"Authorization": f"Bearer {SECRET}"}),
}


@pytest.fixture
async def served(
    settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[int]:
    monkeypatch.setattr("gateway.body_limit.BODY_TIMEOUT_SECONDS", 0.5)
    settings = settings.model_copy(update={"cms_webhook_secret": SecretStr(SECRET)})
    application: Starlette = create_app(settings, clock=clock)
    async with uvicorn_serving(application, log_level="info") as port:
        yield port


def head(path: str, headers: dict[str, str], framing: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json", framing]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def response_head(reader: asyncio.StreamReader) -> tuple[int, str]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return int(raw.split(b" ", 2)[1]), raw.decode("latin-1").lower()


async def healthy(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _ = await response_head(reader)
    writer.close()
    return status == 200


@pytest.mark.parametrize("route", ROUTES)
async def test_a_body_that_never_finishes_is_a_408(served: int, route: str) -> None:
    path, headers = ROUTES[route]
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    try:
        writer.write(head(path, headers, "Content-Length: 100") + b'{"query":')
        await writer.drain()
        status, raw = await response_head(reader)
    finally:
        writer.close()
    assert status == 408
    assert "connection: close" in raw
    assert await healthy(served)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_client_that_hangs_up_half_way_is_not_a_gateway_error(
    served: int, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, headers = ROUTES[route]
    for _ in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", served)
        writer.write(head(path, headers, "Content-Length: 100") + b'[{"type":')
        await writer.drain()
        writer.close()
    await asyncio.sleep(0.3)
    assert await healthy(served)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("route", ROUTES)
async def test_an_endless_chunked_body_gets_its_413_and_the_connection_closed(
    served: int, route: str
) -> None:
    path, headers = ROUTES[route]
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    writer.write(head(path, headers, "Transfer-Encoding: chunked"))
    chunk = b"%x\r\n%s\r\n" % (65_536, b" " * 65_536)
    with contextlib.suppress(ConnectionError):
        for _ in range(400):  # 26 MB, far past every route's limit
            writer.write(chunk)
            await writer.drain()
    try:
        status, raw = await response_head(reader)
        assert status == 413
        assert "connection: close" in raw
        length = int(raw.split("content-length:")[1].split("\r\n")[0])
        await reader.readexactly(length)
        # Then the server closes the connection: it reads no more of the body.
        assert await asyncio.wait_for(reader.read(), 10) == b""
    except (ConnectionResetError, asyncio.IncompleteReadError):
        pass  # closed with the body unread: the kernel resets, and the answer may be lost
    writer.close()
    assert await healthy(served)
