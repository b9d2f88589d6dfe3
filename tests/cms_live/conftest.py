"""Session fixtures: a real Directus and a real Strapi, each with a Tessera listening for it.

Each CMS runs from the npm cache (tests/cms_live/install.py) in the session's
temp folder on a free port, is set up as its guide says, and is stopped at
the end of the session. Each has a Tessera gateway served by uvicorn on a
free port in this process, so the CMS's own webhook (a Directus Flow, a
Strapi webhook) reaches it over HTTP, and the purge sink shows exactly what
it invalidated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from cms_adapters.invalidation import LoggingPurgeSink
from gateway.app import create_app
from gateway.embedded_mongo import EmbeddedMongo
from gateway.settings import Settings
from tests.cms.vendors import SECRET
from tests.cms_live.directus_setup import DirectusSite
from tests.cms_live.directus_setup import set_up as set_up_directus
from tests.cms_live.servers import free_port
from tests.cms_live.strapi_setup import StrapiSite
from tests.cms_live.strapi_setup import set_up as set_up_strapi
from tests.conftest import Clock
from tests.graphql_helpers import ADMIN_KEY, PUBLISHABLE_KEY

#: How soon a CMS edit must be invalidated in Tessera (the issue's bound).
WEBHOOK_DEADLINE = 1.0
#: The purge sinks of the running gateways, so `restore` can wait for its own webhooks.
SINKS: list[LoggingPurgeSink] = []
#: Seconds from a CMS save to Tessera's purge, per checked edit (printed at the end).
LATENCIES: list[tuple[str, float]] = []


@pytest.fixture(scope="session")
def directus_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectusSite]:
    """A Directus 11 set up as docs/cms/directus.md says, with the contract's site."""
    live = set_up_directus(tmp_path_factory.mktemp("directus"))
    try:
        yield live
    finally:
        live.admin.close()
        live.server.stop()


@pytest.fixture(scope="session")
def strapi_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrapiSite]:
    """A Strapi 5 set up as docs/cms/strapi.md says, with the contract's site."""
    live = set_up_strapi(tmp_path_factory.mktemp("strapi"))
    try:
        yield live
    finally:
        live.admin.close()
        live.editor.close()
        live.server.stop()


@dataclass
class Tessera:
    """A gateway on a real port, its HTTP client and its purge sink."""

    url: str
    client: httpx.AsyncClient
    sink: LoggingPurgeSink
    settings: Settings

    async def wait_for_purge(
        self, expected: list[str], since: int, deadline: float = WEBHOOK_DEADLINE
    ) -> tuple[float, list[list[str]]]:
        """Seconds until a purge of exactly `expected` arrived after index `since`, and all purges.

        Fails when it does not arrive within `deadline`, or when a purge of
        everything (`cms:<name>`) arrives instead.
        """
        started = time.monotonic()
        while True:
            purges = self.sink.purged[since:]
            if expected in purges:
                elapsed = time.monotonic() - started
                LATENCIES.append((" ".join(expected), elapsed))
                return elapsed, purges
            broad = [keys for keys in purges if any(k.startswith("cms:") for k in keys)]
            assert not broad, f"invalidated everything: {purges}"
            elapsed = time.monotonic() - started
            assert elapsed < deadline, f"no purge of {expected} within {deadline} s: {purges}"
            await asyncio.sleep(0.01)


async def serve_tessera(settings: Settings, clock: Clock, port: int) -> AsyncIterator[Tessera]:
    """Run the gateway under uvicorn on `port` until the generator is closed."""
    sink = LoggingPurgeSink()
    SINKS.append(sink)
    application = create_app(settings, clock=clock, purge_sink=sink)
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "Tessera did not start"
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Tessera(url, client, sink, settings)
    finally:
        server.should_exit = True
        await task
        SINKS.remove(sink)


def live_settings(mongo_server: EmbeddedMongo, tmp: Path, **cms: Any) -> Settings:
    """Gateway settings for a live CMS: long content TTL, so only webhooks refresh pages."""
    return Settings(
        mongodb_uri=mongo_server.uri,
        mongodb_database=f"tessera_live_{uuid.uuid4().hex[:10]}",
        state_dir=tmp / "state",
        profile_budget_ms=2000,  # a stall of the CI machine must not unpersonalize a page
        publishable_keys=PUBLISHABLE_KEY,
        admin_keys=ADMIN_KEY,
        cms_webhook_secret=SECRET,
        content_ttl=600,
        content_not_found_ttl=0,
        rate_limit_enabled=False,
        **cms,
    )


@pytest.fixture(scope="session")
async def directus_tessera(
    directus_site: DirectusSite,
    mongo_server: EmbeddedMongo,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Tessera]:
    """Tessera on CMS=directus, with the guide's Flow pointing at its webhook."""
    port = free_port()
    settings = live_settings(
        mongo_server,
        tmp_path_factory.mktemp("tessera-directus"),
        cms="directus",
        directus_url=directus_site.url,
        directus_token=directus_site.token,
    )
    async for tessera in serve_tessera(settings, Clock(), port):
        directus_site.create_flow(f"{tessera.url}/webhooks/directus", SECRET)
        yield tessera


@pytest.fixture(scope="session")
async def strapi_tessera(
    strapi_site: StrapiSite,
    mongo_server: EmbeddedMongo,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Tessera]:
    """Tessera on CMS=strapi, with the guide's webhook pointing at it."""
    port = free_port()
    settings = live_settings(
        mongo_server,
        tmp_path_factory.mktemp("tessera-strapi"),
        cms="strapi",
        strapi_url=strapi_site.url,
        strapi_token=strapi_site.token,
    )
    async for tessera in serve_tessera(settings, Clock(), port):
        strapi_site.create_webhook(f"{tessera.url}/webhooks/strapi", SECRET)
        yield tessera


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how fast the CMSs' webhooks invalidated pages in Tessera."""
    if LATENCIES:
        worst = max(seconds for _, seconds in LATENCIES)
        median = sorted(seconds for _, seconds in LATENCIES)[len(LATENCIES) // 2]
        terminalreporter.write_line(
            f"live CMS webhooks: save -> Tessera purge in {median * 1000:.0f} ms (median), "
            f"{worst * 1000:.0f} ms (worst) over {len(LATENCIES)} edits"
        )


async def settle(quiet: float = 0.3, limit: float = 5.0) -> None:
    """Wait until no webhook has reached any gateway for `quiet` seconds (at most `limit`)."""
    started = last_change = time.monotonic()
    seen = sum(len(sink.purged) for sink in SINKS)
    while time.monotonic() - last_change < quiet and time.monotonic() - started < limit:
        await asyncio.sleep(0.02)
        now = sum(len(sink.purged) for sink in SINKS)
        if now != seen:
            seen, last_change = now, time.monotonic()


@pytest.fixture
async def restore() -> AsyncIterator[Callable[[Callable[[], Any]], None]]:
    """Register undo steps; they run after the test, last first, even when it failed.

    Then it waits for the webhooks the undo caused, so the next test's purges are its own.
    """
    steps: list[Callable[[], Any]] = []
    yield steps.append
    for step in reversed(steps):
        step()
    await settle()
