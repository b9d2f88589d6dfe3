"""`python -m gateway serve` on a real socket, on its embedded defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {"STATE_DIR": str(state_dir), "PORT": str(self.port), "LOG_LEVEL": "WARNING"}
        env |= {"PUBLISHABLE_KEYS": PUBLISHABLE_KEY}
        self.log = state_dir.parent / "gateway.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("gateway did not become ready in 60 s")

    def stop(self) -> bool:
        """SIGTERM; True if it exited cleanly (uvicorn re-raises the signal once done)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30) in (0, -signal.SIGTERM)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"
    for pid in processes_mentioning(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


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
