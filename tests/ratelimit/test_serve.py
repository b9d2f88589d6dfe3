"""`python -m gateway serve` on a real socket: limits, and who reads forwarding headers."""

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

TYPENAME = {"query": "{ __typename }"}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    """The gateway on a free port, with no loopback exemption and loopback not trusted."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env |= {
        "STATE_DIR": str(tmp_path / "state"),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "SEED_DEMO": "false",
        "RATE_LIMIT_EXEMPT": "",
        "TRUSTED_PROXIES": "10.0.0.0/8",
        "RATE_LIMIT_GRAPHQL_IP_RATE": "0.01",
        "RATE_LIMIT_GRAPHQL_IP_BURST": "2",
    }
    log = (tmp_path / "gateway.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway did not start in 60 s"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_serve_ignores_forwarding_headers_from_an_untrusted_peer(serve: str) -> None:
    with httpx.Client(base_url=serve, timeout=10) as client:
        statuses = [
            client.post(
                "/graphql", json=TYPENAME, headers={"X-Forwarded-For": f"198.51.100.{n}"}
            ).status_code
            for n in range(4)
        ]
        refused = client.post("/graphql", json=TYPENAME)
        health = [client.get("/healthz").status_code for _ in range(5)]
    # 127.0.0.1 is not a trusted proxy here: the rotating header buys nothing.
    assert statuses == [200, 200, 429, 429]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "100"
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert health == [200] * 5
