"""After an unexpected error, the same keep-alive connection still serves requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock
from tests.hostile.serving import uvicorn_serving


@pytest.fixture
async def served(settings: Settings, clock: Clock) -> AsyncIterator[int]:
    application: Starlette = create_app(settings, clock=clock)

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug the request should not see")

    application.add_route("/boom", boom, methods=["POST"])
    async with uvicorn_serving(application) as port:
        yield port


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.slow
async def test_errors_leave_the_connection_usable(served: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    try:
        status, body = await exchange(reader, writer, post("/boom", b"{}"))
        assert status == 500
        assert b"a bug" not in body
        assert b"Traceback" not in body
        status, _ = await exchange(reader, writer, post("/graphql", b"[" * 30_000))
        assert status == 400
        status, body = await exchange(reader, writer, post("/graphql", b"null"))
        assert status == 400
        status, body = await exchange(
            reader, writer, post("/graphql", b'{"query": "{ __typename }"}')
        )
        assert (status, body) == (200, b'{"data":{"__typename":"Query"}}')
    finally:
        writer.close()
