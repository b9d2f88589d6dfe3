"""`python -m gateway serve` on a real socket, on its embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.embedded_mongo import free_port
from tests.graphql_helpers import INGEST, PAGE_QUERY, PUBLISHABLE_KEY, variants


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (to find leftover children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


class Served:
    """`python -m gateway serve` in a process group (and session) of its own."""

    #: Every gateway started, so a fixture can kill those a failed test left running.
    started: list[subprocess.Popen[bytes]] = []

    def __init__(
        self,
        state_dir: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        ready: bool = True,
    ) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        environment |= {"STATE_DIR": str(state_dir), "PORT": str(self.port), "LOG_LEVEL": "INFO"}
        environment |= {"PUBLISHABLE_KEYS": PUBLISHABLE_KEY} | (env or {})
        self.log = state_dir.parent / "gateway.log"
        command = [sys.executable, "-m", "gateway", "serve"]
        if workers > 1:
            command += ["--workers", str(workers)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a test can signal the group, as a terminal's Ctrl+C.
                start_new_session=True,
            )
        Served.started.append(self.process)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway did not become ready in {timeout} s")

    def advert(self) -> dict[str, Any]:
        """What the embedded server's `server.uri` says (pids, state)."""
        advert: dict[str, Any] = json.loads((self.state_dir / "mongo" / "server.uri").read_text())
        return advert

    def children(self) -> list[int]:
        """The gateway's child processes (the embedded server, workers)."""
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def stop(self, sig: int = signal.SIGTERM, *, group: bool = False) -> bool:
        """Signal it (or its process group); True if it exited cleanly within 60 s."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        # uvicorn re-raises the signal once done; `--workers` exits 0.
        return self.process.wait(60) in (0, -sig)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (an exited child not yet reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 30) -> bool:
    """Whether process `pid` has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_leftovers(tmp_path: Path, since: int = 0) -> None:
    """Kill what a failed test left running: gateways started from index `since` on, its servers."""
    # Only this test's gateways: a session fixture's gateway started earlier must outlive it.
    while len(Served.started) > since:
        process = Served.started.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for pid in processes_mentioning(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    since = len(Served.started)
    yield tmp_path / "state"
    kill_leftovers(tmp_path, since)


def test_serve_on_embedded_defaults_and_keep_data_across_restarts(state_dir: Path) -> None:
    served = Served(state_dir)
    try:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            first = client.post(
                "/graphql", json={"query": PAGE_QUERY, "variables": {"slug": "home"}}
            )
            assert first.status_code == 200
            assert "tsr_vid=" in first.headers["set-cookie"]
            page = first.json()["data"]["page"]
            assert page["personalized"] is True
            assert variants(page)["home-hero"] == "welcome-offer"
            vip = client.post(
                "/graphql",
                json={"query": PAGE_QUERY, "variables": {"slug": "home"}},
                headers={"X-Visitor-Id": "demo-vip"},
            )
            assert variants(vip.json()["data"]["page"])["home-hero"] == "vip-early-access"
            for _ in range(3):
                tracked = client.post(
                    "/graphql",
                    json={"query": "mutation { track(event: {type: PAGE_VIEW}) { accepted } }"},
                    headers={"X-Visitor-Id": "persistent", **INGEST},
                )
                assert tracked.json() == {"data": {"track": {"accepted": True}}}
    finally:
        assert served.stop()
    # The embedded database stopped with the gateway.
    assert processes_mentioning(str(state_dir)) == []
    assert (state_dir / "mongo").is_dir()

    served = Served(state_dir)
    try:
        response = httpx.post(
            f"{served.url}/graphql",
            json={"query": "{ visitor { traits audiences } }"},
            headers={"X-Visitor-Id": "persistent"},
            timeout=10,
        )
        visitor = response.json()["data"]["visitor"]
        assert visitor["traits"]["pageViews"] == 3
        assert "returning" in visitor["audiences"]
    finally:
        assert served.stop()
