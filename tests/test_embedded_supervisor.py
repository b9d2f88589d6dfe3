"""The embedded server's supervisor: restarts, a restart that keeps failing, `/healthz`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from common.service import ShutdownBudget
from gateway.app import create_app
from gateway.embedded_mongo import Advert
from gateway.embedded_supervisor import AdvertStatus, EmbeddedStatus, EmbeddedSupervisor
from gateway.settings import Settings
from tests.conftest import Clock

pytestmark = pytest.mark.slow

# Takes WiredTiger's lock as soon as the server lets go of it, and holds it until killed.
LOCKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def supervised(tmp_path: Path) -> AsyncIterator[EmbeddedSupervisor]:
    supervisor = EmbeddedSupervisor(
        tmp_path / "mongo", restart_initial=0.2, restart_max=0.4, failed_after=2
    )
    async with supervisor:
        yield supervisor
    assert supervisor.status() == EmbeddedStatus("stopped", supervisor.restarts)
    assert not (tmp_path / "mongo" / "server.uri").exists()


async def test_a_restart_that_keeps_failing_fails_healthz_until_the_server_is_back(
    supervised: EmbeddedSupervisor, tmp_path: Path
) -> None:
    settings = Settings(
        mongodb_uri=supervised.uri, state_dir=tmp_path / "state", profile_budget_ms=500
    )
    app = create_app(settings, clock=Clock(), embedded=supervised)
    workers = AdvertStatus(supervised.storage, ttl=0)  # what `--workers` workers read
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/healthz")
            assert health.json() == {
                "status": "ok",
                "embeddedDatabase": {"state": "running", "restarts": 0},
            }
            assert workers.status() == EmbeddedStatus("running", 0)
            first = supervised.server.pid
            assert first is not None
            locker = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-c", LOCKER, str(supervised.storage / "WiredTiger.lock")],
                stdout=subprocess.PIPE,
            )
            try:
                os.kill(first, signal.SIGKILL)
                assert locker.stdout is not None
                assert await asyncio.to_thread(locker.stdout.readline) == b"locked\n"
                # Every restart finds the storage locked: after two, the state is failed.
                await until(lambda: supervised.status().state == "failed")
                health = await client.get("/healthz")
                assert health.status_code == 503
                assert health.json() == {
                    "status": "failing",
                    "embeddedDatabase": {"state": "failed", "restarts": 1},
                }
                assert workers.status() == EmbeddedStatus("failed", 1)
                assert (await client.get("/readyz")).status_code == 503
            finally:
                locker.kill()
                locker.wait()
                if locker.stdout is not None:
                    locker.stdout.close()
            # Attempts go on: with the lock released, the server comes back.
            await until(lambda: supervised.status().state == "running")
            assert supervised.server.pid != first
            assert (await client.get("/healthz")).status_code == 200
            assert workers.status() == EmbeddedStatus("running", 1)
            advert = Advert.read(supervised.storage)
            assert advert is not None
            assert advert.server == supervised.server.pid
            for _ in range(100):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).status_code == 200


def test_flushing_services_share_one_shutdown_budget() -> None:
    now = [100.0]
    budget = ShutdownBudget(10.0, clock=lambda: now[0])
    now[0] += 50  # not started until shutdown begins
    assert budget.remaining() == 10.0
    now[0] += 7  # the first service took 7 s
    assert budget.remaining() == 3.0
    now[0] += 5
    assert budget.remaining() == 0.0
    budget.start()  # starting again changes nothing
    assert budget.remaining() == 0.0


async def test_an_app_without_mongodb_uri_supervises_an_embedded_server_of_its_own(
    tmp_path: Path,
) -> None:
    # `uvicorn --factory gateway.app:create_app` without `serve`: the lifespan owns it.
    settings = Settings(mongodb_uri=None, state_dir=tmp_path / "state", profile_budget_ms=500)
    app = create_app(settings, clock=Clock())
    storage = tmp_path / "state" / "mongo"
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            health = await client.get("/healthz")
            assert health.json() == {
                "status": "ok",
                "embeddedDatabase": {"state": "running", "restarts": 0},
            }
            assert (await client.get("/readyz")).status_code == 200
            advert = Advert.read(storage)
            assert advert is not None
            assert advert.owner == os.getpid()
            server = advert.server
            assert server is not None
    # Stopped with the app (after its services flushed), its advert gone.
    assert Advert.read(storage) is None
    with pytest.raises(ProcessLookupError):
        os.kill(server, 0)


async def test_a_hung_server_is_killed_and_restarted_a_slow_one_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = EmbeddedSupervisor(
        tmp_path / "mongo", restart_initial=0.2, hang_after=6.0, ping_interval=0.5
    )
    async with supervisor:
        first = supervisor.server.pid
        assert first is not None
        try:
            # Paused for less than the bound (a server busy compacting, say): left alone.
            os.kill(first, signal.SIGSTOP)
            await asyncio.sleep(1.0)
            os.kill(first, signal.SIGCONT)
            await asyncio.sleep(3.0)
            assert (supervisor.server.pid, supervisor.hangs, supervisor.restarts) == (first, 0, 0)
            # Paused for good: a hang. Killed once silent for 6 s, then restarted.
            os.kill(first, signal.SIGSTOP)
            stopped = time.monotonic()
            await until(lambda: supervisor.restarts == 1 and supervisor.status().state == "running")
            assert time.monotonic() - stopped >= 6.0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(first, signal.SIGCONT)
        assert supervisor.hangs == 1
        assert supervisor.server.pid not in (None, first)
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            supervisor.uri, directConnection=True, serverSelectionTimeoutMS=10_000
        )
        try:
            assert (await client.admin.command("ping"))["ok"] == 1
        finally:
            await client.close()
    assert f"embedded SecantusDB (pid {first}) answered nothing for" in caplog.text
    assert "restarted" in caplog.text


async def test_another_program_on_the_port_is_a_failed_restart_not_a_running_server(
    supervised: EmbeddedSupervisor,
) -> None:
    first = supervised.server.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 5
    while True:  # as soon as the killed server's port is free, before the restart takes it
        try:
            squatter.bind((supervised.server.host, supervised.server.port))
            break
        except OSError:
            assert time.monotonic() < deadline, "the port never came free"
            await asyncio.sleep(0.005)
    squatter.listen()  # accepts TCP connections, never speaks MongoDB's protocol
    try:
        # Each restart's server exits (its port is taken): failed, not running.
        await until(lambda: supervised.status().state == "failed")
        assert supervised.restarts == 1
    finally:
        squatter.close()
    await until(lambda: supervised.status().state == "running")
    assert supervised.server.pid != first
