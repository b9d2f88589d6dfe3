"""The real gateway behind the shipped VCL in a real varnishd: hits, keys, no leaks, purges.

Each browser keeps the cookies the gateway hands out (`tsr_vid`, `tsr_ek`), as
a browser would; visitors differ by profile (the demo's seeded visitors and
new ones), device (User-Agent) and country (`CF-IPCountry`, which the VCL
passes through). Every answer is compared with what the gateway itself says
to that same visitor, asked directly: exactly, not by sampling.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.embedded_mongo import EmbeddedMongo
from tests.edge.varnish import Varnish, free_port

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "edge-webhook-secret"
PAGE = "query Page($slug: String!) { page(slug: $slug) { slug personalized blocks { id } } }"
VISITOR = "query Me { visitor { id personalized audiences } }"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"


def url(query: str, **variables: str) -> str:
    return "/graphql?" + urllib.parse.urlencode(
        {"query": query, "variables": json.dumps(variables, sort_keys=True)}
    )


class Gateway:
    """`python -m gateway serve` on a test database, purging the varnishd given."""

    def __init__(self, mongo: EmbeddedMongo, database: str, state: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "MONGODB_URI": mongo.uri,
            "MONGODB_DATABASE": database,
            "STATE_DIR": str(state),
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
            "CMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        self.log = state / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, varnish_url: str) -> None:
        env = {**self.env, "VARNISH_URLS": varnish_url}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the gateway did not become ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="module")
def stack(
    mongo_server: EmbeddedMongo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Varnish]]:
    folder = tmp_path_factory.mktemp("edge-gateway")
    gateway = Gateway(mongo_server, f"edge_{os.getpid()}", folder / "state")
    # The VCL needs the backend's port before the gateway needs varnishd's: reserve one.
    varnish = Varnish(gateway.port, folder / "varnish")
    varnish.start()
    try:
        gateway.start(varnish.url)
        deadline = time.monotonic() + 30
        while not varnish.backend_healthy():  # the VCL probes /healthz before it forwards
            assert time.monotonic() < deadline, "varnishd never saw the gateway healthy"
            time.sleep(0.2)
        yield gateway, varnish
    finally:
        gateway.stop()
        varnish.stop()


@dataclass
class Browser:
    """One visitor's browser: headers it always sends, and the cookies it was given."""

    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)
    checked: int = 0
    degraded: int = 0
    problems: list[str] = field(default_factory=list)

    def request_headers(self) -> dict[str, str]:
        jar = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {**self.headers, **({"Cookie": jar} if jar else {})}

    def keep(self, set_cookies: list[str]) -> None:
        for header in set_cookies:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]


def get(
    port: int, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes, list[str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        lower = {name.lower(): value for name, value in response.getheaders()}
        return response.status, lower, body, response.msg.get_all("set-cookie") or []
    finally:
        connection.close()


def test_an_anonymous_page_is_a_hit_after_its_first_miss(
    stack: tuple[Gateway, Varnish],
) -> None:
    _, varnish = stack
    path = url(PAGE, slug="about")
    first = get(varnish.port, path, {})
    second = get(varnish.port, path, {})
    assert first[0] == second[0] == 200
    assert first[1]["x-cache"] == "MISS"
    assert second[1]["x-cache"] == "HIT"
    assert second[2] == first[2]
    assert second[3] == []  # a shared answer never sets a cookie


def test_audience_pages_are_hits_per_edge_key(stack: tuple[Gateway, Varnish]) -> None:
    _, varnish = stack
    path = url(PAGE, slug="outdoor")
    desktop = [Browser({}), Browser({})]
    phone = Browser({"User-Agent": IPHONE})
    for browser in [*desktop, phone]:
        status, headers, _, cookies = get(varnish.port, path, browser.request_headers())
        assert status == 200
        assert headers["x-cache"] == "MISS"  # private: no edge key presented yet
        browser.keep(cookies)
    assert desktop[0].cookies["tsr_ek"] == desktop[1].cookies["tsr_ek"]
    assert phone.cookies["tsr_ek"] != desktop[0].cookies["tsr_ek"]
    outcomes = []
    for browser in [*desktop, phone, phone]:
        status, headers, _, cookies = get(varnish.port, path, browser.request_headers())
        assert status == 200
        assert cookies == [], (headers, browser.cookies)
        outcomes.append(headers["x-cache"])
    # The first desktop browser fills the desktop key, the second hits it; the phone's
    # key is filled by its first request and hit by its second.
    assert outcomes == ["MISS", "HIT", "MISS", "HIT"]


def test_ten_thousand_mixed_requests_never_cross_visitors(
    stack: tuple[Gateway, Varnish],
) -> None:
    gateway, varnish = stack
    rng = random.Random(20261201)
    profiles = ["demo-vip", "demo-returning", "demo-cart", None, None, None]
    browsers: list[Browser] = []
    for index in range(240):
        headers: dict[str, str] = {}
        if index % 3 == 0:
            headers["User-Agent"] = IPHONE
        if index % 5 == 0:
            headers["CF-IPCountry"] = "DE"
        browser = Browser(headers)
        profile = profiles[index % len(profiles)]
        if profile is not None:
            browser.cookies["tsr_vid"] = profile
        else:
            browser.cookies["tsr_vid"] = f"edge-new-{index}"
        browsers.append(browser)
    requests = [
        ("public", url(PAGE, slug="about")),
        ("audience", url(PAGE, slug="outdoor")),
        ("audience", url(PAGE, slug="sale")),
        ("mixed", url(PAGE, slug="home")),
        ("private", url(VISITOR)),
    ]
    expected: dict[tuple[str, str], Any] = {}

    def truth(browser: Browser, path: str) -> Any:
        """What the gateway answers this visitor, asked directly (memoized per visitor)."""
        key = (browser.cookies["tsr_vid"] + json.dumps(browser.headers), path)
        for _ in range(20):
            if key in expected:
                break
            status, _, body, _ = get(gateway.port, path, browser.request_headers())
            assert status == 200
            answer = json.loads(body)
            shown = answer["data"].get("page") or answer["data"].get("visitor")
            if shown["personalized"]:  # not a degraded answer
                expected[key] = answer
        return expected[key]

    workers = 16
    queues: list[list[tuple[int, tuple[str, str]]]] = [[] for _ in range(workers)]
    for _ in range(10_000):
        index = rng.randrange(len(browsers))
        queues[index % workers].append((index, rng.choices(requests, [3, 3, 2, 1, 1])[0]))

    def work(queue: list[tuple[int, tuple[str, str]]]) -> tuple[int, int]:
        hits = total = 0
        for index, (kind, path) in queue:
            browser = browsers[index]
            status, headers, body, cookies = get(varnish.port, path, browser.request_headers())
            total += 1
            if status != 200:
                browser.problems.append(f"{path}: status {status}")
                continue
            answer = json.loads(body)
            shared = headers.get("x-tessera-cache-scope") != "private"
            data = answer.get("data") or {}
            shown = data.get("page") or data.get("visitor")
            if answer != truth(browser, path):
                if shown is not None and shown["personalized"] is False and not shared:
                    # Degraded (the profile read missed its budget): defaults, never stored.
                    browser.degraded += 1
                else:
                    browser.problems.append(f"{browser.cookies['tsr_vid']} got {answer}")
            if shared and cookies:
                browser.problems.append(f"a shared answer set cookies {cookies}")
            if kind in ("private",) and headers["x-cache"] == "HIT":
                browser.problems.append(f"a private answer came from the cache: {path}")
            hits += headers["x-cache"] == "HIT"
            browser.keep(cookies)
            browser.checked += 1
        return hits, total

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(work, queues))
    problems = [problem for browser in browsers for problem in browser.problems]
    assert problems == [], problems[:5]
    assert sum(b.checked for b in browsers) == 10_000
    assert sum(b.degraded for b in browsers) < 100  # under 1% served unpersonalized
    hits = sum(h for h, _ in results)
    # Public and audience pages are most of the traffic: most answers come from the edge.
    assert hits > 5_000, hits


def test_a_publish_webhook_purges_within_a_second(stack: tuple[Gateway, Varnish]) -> None:
    gateway, varnish = stack
    path = url(PAGE, slug="about")
    get(varnish.port, path, {})
    assert get(varnish.port, path, {})[1]["x-cache"] == "HIT"
    started = time.monotonic()
    response = httpx.post(
        f"{gateway.url}/webhooks/filesystem",
        json={"pages": ["about"]},
        headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
    )
    assert response.status_code == 200, response.text
    while get(varnish.port, path, {})[1]["x-cache"] == "HIT":
        assert time.monotonic() - started < 1.0, "still cached a second after the webhook"
        time.sleep(0.02)
    assert time.monotonic() - started < 1.0
