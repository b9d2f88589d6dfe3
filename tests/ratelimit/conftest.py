"""A real redis-server, and gateways whose rate limits live in memory or in Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock

BACKENDS = ["memory", "redis"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A redis-server on `port`, answering PING (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    options = {"--port": str(port), "--bind": "127.0.0.1", "--save": "", "--appendonly": "no"}
    process = subprocess.Popen(
        [binary, *(word for pair in options.items() for word in pair), "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the session's rate-limit tests."""
    process = start_redis(port := free_port(), tmp_path_factory.mktemp("redis-ratelimit"))
    yield f"redis://127.0.0.1:{port}/0"
    stop_redis(process)


@pytest.fixture(params=BACKENDS)
def cache_url(request: pytest.FixtureRequest) -> str:
    """`memory://`, or the session's Redis emptied of earlier tests' buckets."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@dataclass
class Gateway:
    """A running gateway; `client(ip)` talks to it from that socket address."""

    app: ASGIApp

    @asynccontextmanager
    async def client(self, ip: str = "203.0.113.10") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tessera.test") as c:
            yield c


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def gateway(settings: Settings, clock: Clock) -> GatewayFactory:
    """Start a gateway with `settings` changed by keyword arguments (no loopback exemption)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        changed = settings.model_copy(
            update={"seed_demo": False, "rate_limit_exempt": "", **overrides}
        )
        application = create_app(changed, clock=clock)
        async with LifespanManager(application) as manager:
            yield Gateway(manager.app)

    return start
