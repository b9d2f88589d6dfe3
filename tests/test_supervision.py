"""`serve` owns its embedded database: real processes, killed and signalled as in production."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from gateway.embedded_mongo import EmbeddedMongo, free_port
from tests.graphql_helpers import INGEST, PAGE_QUERY, variants
from tests.test_serve_socket import Served, alive, kill_leftovers, processes_mentioning, wait_gone

pytestmark = pytest.mark.slow

VISITOR_QUERY = "{ visitor { audiences traits } }"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    since = len(Served.started)
    yield tmp_path / "state"
    kill_leftovers(tmp_path, since)


def page(url: str, visitor: str) -> dict:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": PAGE_QUERY, "variables": {"slug": "home"}},
        headers={"X-Visitor-Id": visitor},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["page"]


def visitor(url: str, visitor_id: str) -> dict:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": VISITOR_QUERY},
        headers={"X-Visitor-Id": visitor_id, "Connection": "close"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["visitor"]


def page_views(url: str, visitor_id: str, count: int) -> None:
    events = [
        {"type": "page_view", "eventId": f"{visitor_id}-{n}", "visitorId": visitor_id}
        for n in range(count)
    ]
    response = httpx.post(f"{url}/v1/events", json=events, headers=INGEST, timeout=10)
    assert response.status_code == 200, response.text


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_gateway_killed_outright_takes_its_database_along_and_serve_starts_again(
    state_dir: Path,
) -> None:
    served = Served(state_dir)
    page_views(served.url, "kept", 3)
    server = served.advert()["server"]
    assert server in served.children()
    served.process.kill()
    served.process.wait()
    # The server noticed its owner was gone and stopped itself (cleanly: its lock released).
    assert wait_gone(server), "the embedded server outlived the gateway"
    assert processes_mentioning(str(state_dir)) == []

    served = Served(state_dir)
    try:
        assert page(served.url, "demo-vip")["personalized"] is True
        kept = visitor(served.url, "kept")
        assert kept["traits"]["pageViews"] == 3
        assert "returning" in kept["audiences"]
    finally:
        assert served.stop()
    assert processes_mentioning(str(state_dir)) == []


def test_an_orphan_left_on_the_storage_is_stopped_before_serve_starts_its_own(
    state_dir: Path,
) -> None:
    # A server whose owner died without it stopping (an older Tessera, a watch that failed).
    storage = state_dir / "mongo"
    storage.mkdir(parents=True)
    port = free_port()
    with (state_dir / "orphan.log").open("ab") as log:
        orphan = subprocess.Popen(
            [sys.executable, "-m", "secantus", "--port", str(port), "--storage-path", str(storage)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + 60
    while not (storage / "WiredTiger.lock").exists() or not _answers(port):
        assert time.monotonic() < deadline
        assert orphan.poll() is None
        time.sleep(0.1)
    (storage / "server.uri").write_text(
        json.dumps(
            {
                "uri": uri,
                "owner": dead_pid(),
                "server": orphan.pid,
            }
        )
    )
    served = Served(state_dir)
    try:
        # Stopped cleanly (SIGTERM), not killed.
        assert orphan.wait(5) == 0
        assert f"stopping SecantusDB pid {orphan.pid}" in served.log.read_text()
        assert served.advert()["server"] != orphan.pid
        assert page(served.url, "demo-vip")["personalized"] is True
    finally:
        assert served.stop()


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_second_serve_on_the_same_state_dir_is_refused_clearly(state_dir: Path) -> None:
    served = Served(state_dir)
    try:
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {"STATE_DIR": str(state_dir), "PORT": str(free_port())}
        try:
            second = subprocess.run(
                [sys.executable, "-m", "gateway", "serve"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the second serve ran on the first one's STATE_DIR")
        assert second.returncode == 1, second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith("python -m gateway serve: ")
        assert f"is in use by another process (pid {served.process.pid}" in message
        assert "another STATE_DIR" in message
        # The first one never noticed.
        assert httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200
        assert served.advert()["owner"] == served.process.pid
    finally:
        assert served.stop()


def test_a_killed_embedded_server_is_restarted_and_pages_personalize_again(
    state_dir: Path,
) -> None:
    served = Served(state_dir)
    try:
        health = httpx.get(f"{served.url}/healthz", timeout=5).json()
        assert health == {"status": "ok", "embeddedDatabase": {"state": "running", "restarts": 0}}
        server = served.advert()["server"]
        os.kill(server, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            health = httpx.get(f"{served.url}/healthz", timeout=5)
            # Liveness holds while the server is brought back: the gateway itself is fine.
            assert health.status_code == 200
            if health.json()["embeddedDatabase"] == {"state": "running", "restarts": 1}:
                break
            assert time.monotonic() < deadline, health.json()
            time.sleep(0.1)
        restarted = served.advert()
        assert restarted["server"] != server
        assert alive(restarted["server"])
        assert restarted["state"] == "running"
        # Reads and writes reach the restarted server: an event changes a new visitor's page.
        deadline = time.monotonic() + 30
        while httpx.get(f"{served.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        page_views(served.url, "after-restart", 3)
        assert "returning" in visitor(served.url, "after-restart")["audiences"]
        vip = page(served.url, "demo-vip")
        assert vip["personalized"] is True
        assert variants(vip)["home-hero"] == "vip-early-access"
    finally:
        assert served.stop()
    log = served.log.read_text()
    assert log.count("exited with status -9; restarting") == 1
    assert log.count("embedded SecantusDB restarted") == 1


def test_sigterm_to_the_process_group_flushes_exposures_before_the_database_stops(
    state_dir: Path,
) -> None:
    served = Served(state_dir)
    answered = 0
    stop = threading.Event()
    lock = threading.Lock()

    def browse(worker: int) -> None:
        nonlocal answered
        with httpx.Client(base_url=served.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    response = client.post(
                        "/graphql",
                        json={"query": PAGE_QUERY, "variables": {"slug": "home"}},
                        headers={"X-Visitor-Id": f"load-{worker}-{n}"},
                    )
                except httpx.TransportError:
                    return  # the gateway stopped listening
                if response.status_code == 200 and response.json()["data"]["page"]["personalized"]:
                    with lock:
                        answered += 1

    threads = [threading.Thread(target=browse, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    server = served.advert()["server"]
    try:
        # What a terminal's Ctrl+C or `kill -TERM -<pgid>` does: every process of the group.
        assert served.stop(signal.SIGTERM, group=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert answered > 0
    assert not alive(server)
    log = served.log.read_text()
    assert "exposures dropped" not in log
    # Stopped last: after the app's shutdown.
    assert log.index("Application shutdown complete") < log.index("embedded SecantusDB stopped")
    with EmbeddedMongo(state_dir / "mongo") as mongo:
        client: MongoClient[dict[str, object]] = MongoClient(mongo.uri)
        try:
            # Every personalized page answered queued one exposure, and each was written.
            stored = client["tessera"]["exposures"].count_documents({})
        finally:
            client.close()
    assert stored >= answered


def test_serve_with_two_workers_shares_one_database_and_stops_cleanly(state_dir: Path) -> None:
    served = Served(state_dir, workers=2)
    try:
        server = served.advert()["server"]
        children = served.children()
        workers = [pid for pid in children if "spawn_main" in command_line(pid)]
        assert server in children
        assert len(workers) == 2, children
        health = httpx.get(f"{served.url}/healthz", timeout=5).json()
        assert health["embeddedDatabase"]["state"] == "running"
        assert page(served.url, "demo-vip")["personalized"] is True
        page_views(served.url, "two-workers", 3)
        # Fresh connections spread over both workers; each sees the event (the one that
        # took it at once, the other through the change stream).
        deadline = time.monotonic() + 10
        while True:
            seen = [
                "returning" in visitor(served.url, "two-workers")["audiences"] for _ in range(12)
            ]
            if all(seen):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
    finally:
        assert served.stop()
    for pid in children:
        assert wait_gone(pid, 10), f"pid {pid} ({command_line(pid)}) outlived serve"
    log = served.log.read_text()
    assert "uvicorn.access" not in log  # no --access-log: none
    # No Redis: the workers share no content cache, and serve says what that means.
    assert "2 workers without a Redis CACHE_URL" in log
    assert not (state_dir / "mongo" / "server.uri").exists()


def test_workers_and_database_follow_a_serve_killed_outright(state_dir: Path) -> None:
    served = Served(state_dir, workers=2)
    children = served.children()
    served.process.kill()
    served.process.wait()
    for pid in children:
        assert wait_gone(pid), f"pid {pid} outlived its killed parent"
    served = Served(state_dir)
    try:
        assert page(served.url, "demo-vip")["personalized"] is True
    finally:
        assert served.stop()


def test_sigterm_with_the_database_hung_still_stops_within_its_bound(state_dir: Path) -> None:
    # The audience refresh runs every 0.5 s, so it waits on the hung server when stopping
    # cancels it (pymongo turned that cancellation into its own error: serve never exited).
    settings = {"SHUTDOWN_TIMEOUT": "6", "EMBEDDED_DB_HANG_SECONDS": "0"}
    served = Served(state_dir, env=settings | {"AUDIENCE_REFRESH_SECONDS": "0.5"})
    server = served.advert()["server"]
    os.kill(server, signal.SIGSTOP)
    try:
        events = [{"type": "page_view", "eventId": "hung-1", "visitorId": "hung"}]
        refused = httpx.post(f"{served.url}/v1/events", json=events, headers=INGEST, timeout=30)
        assert refused.status_code == 503, refused.text
        assert page(served.url, "demo-vip")["personalized"] is False
        time.sleep(1.0)
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        status = served.process.wait(60)
        took = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGCONT)
    assert status in (0, -signal.SIGTERM)
    # SHUTDOWN_TIMEOUT, 2 s to close the client, 10 s for the server to stop (it is
    # killed), and slack for a loaded machine.
    assert took < 6 + 2 + 10 + 8, took
    assert wait_gone(server, 10)
    log = served.log.read_text()
    assert log.index("Application shutdown complete") < log.index("embedded SecantusDB stopped")
