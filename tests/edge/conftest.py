"""A contract origin and a real varnishd in front of it, per session (and on demand)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.edge.varnish import ROOT, Varnish, free_port


@dataclass
class OriginProcess:
    """The contract origin (tests/edge/origin.py) in a child process; restartable."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OriginProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.edge.origin", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the contract origin did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def hits(self) -> dict[str, int]:
        """Backend hits per URL (path and query) so far."""
        return dict(httpx.get(f"{self.url}/__stats").json()["hits"])

    def not_modified(self) -> dict[str, int]:
        """304 answers per URL so far."""
        return dict(httpx.get(f"{self.url}/__stats").json()["not_modified"])

    def peak(self) -> dict[str, int]:
        """The most requests each URL had in progress at once."""
        return dict(httpx.get(f"{self.url}/__stats").json()["peak"])

    def fail(self, slug: str, status: int) -> None:
        """Make a page answer `status` (an error), or heal it with 0."""
        httpx.post(f"{self.url}/__fail", params={"slug": slug, "status": str(status)})

    def publish(self, slug: str) -> None:
        """Change a page's content (its version), as a CMS publish would."""
        httpx.post(f"{self.url}/__publish", params={"slug": slug}).raise_for_status()


def page_url(slug: str, scope: str = "public", *, apq: bool = True, **extra: Any) -> str:
    """A /graphql GET URL for a contract page: an APQ hash-only GET or a query GET."""
    variables = json.dumps({"slug": slug, "scope": scope, **extra}, sort_keys=True)
    if apq:
        extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}})
        params = {"extensions": extensions, "variables": variables}
    else:
        params = {"query": "query Page($slug: String!) { page(slug: $slug) { slug } }"}
        params["variables"] = variables
    return "/graphql?" + urllib.parse.urlencode(params)


def unique(prefix: str) -> str:
    """A slug no other test uses (the session's varnishd is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def origin() -> Iterator[OriginProcess]:
    """The session's contract origin."""
    process = OriginProcess(free_port()).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def varnish(origin: OriginProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Varnish]:
    """A real varnishd running the shipped VCL in front of the session's contract origin."""
    instance = Varnish(origin.port, tmp_path_factory.mktemp("varnish"))
    with instance:
        yield instance


def edge_client(base_url: str, **options: Any) -> httpx.AsyncClient:
    """An HTTP client that keeps no cookies: each request says exactly what it sends."""
    client = httpx.AsyncClient(base_url=base_url, timeout=10, **options)

    async def forget(response: httpx.Response) -> None:
        client.cookies.clear()

    client.event_hooks["response"].append(forget)
    return client


@pytest.fixture
async def edge(varnish: Varnish) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's varnishd."""
    async with edge_client(varnish.url) as client:
        yield client


def cookie_header(**cookies: str) -> dict[str, str]:
    """A Cookie header exactly as given (the client keeps no jar)."""
    return {"cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
