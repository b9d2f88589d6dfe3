"""Regression tests for bugs found while writing the unit suite."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from aiocache import Cache
from pymongo.errors import ServerSelectionTimeoutError

from blocks.parse import ContentError, ParsedPage, parse_page, parse_variant
from cms_adapters.base import CMSAdapter
from cms_adapters.content_cache import ContentCache
from gateway.visitor import identify
from profiles.reader import BudgetedProfileReader
from profiles.validation import parse_event


# 1 -------------------------------------------------------------------------------
class GatedAdapter(CMSAdapter):
    name = "fake"

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return parse_page({"slug": slug, "title": slug, "blocks": []})

    async def list_pages(self) -> list[str]:
        return []


async def test_cancelling_the_first_caller_does_not_cancel_the_other_waiters() -> None:
    adapter = GatedAdapter()
    content = ContentCache(adapter, Cache(Cache.MEMORY))
    leader = asyncio.create_task(content.get_page("home"))
    await adapter.entered.wait()
    follower = asyncio.create_task(content.get_page("home"))
    await asyncio.sleep(0.01)
    leader.cancel()  # e.g. the first client disconnected or hit its own timeout
    await asyncio.sleep(0.01)
    adapter.gate.set()
    page = await asyncio.wait_for(follower, 2)  # raises CancelledError today
    assert page.page.slug == "home"


# 2 -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cookie_header",
    [
        'prefs={"theme":"dark"}; tsr_vid=abc123',
        "greeting=hello world; tsr_vid=abc123",
        "a=1;; tsr_vid=abc123",
    ],
    ids=["json-cookie-before", "space-in-other-cookie", "empty-segment"],
)
def test_unrelated_malformed_cookie_does_not_hide_the_visitor_cookie(cookie_header: str) -> None:
    visitor = identify(None, cookie_header)
    assert visitor is not None
    assert (visitor.id, visitor.source) == ("abc123", "cookie")  # today: a new random id


# 3 -------------------------------------------------------------------------------
def test_visitor_id_with_trailing_newline_is_rejected() -> None:
    assert identify("abc\n", None) is None  # today: VisitorIdentity("abc\n", "header")
    cookie_visitor = identify(None, 'tsr_vid="abc\\012"')  # octal escape of "\n"
    assert cookie_visitor is not None
    assert cookie_visitor.id != "abc\n"  # today: accepted as the id "abc\n"


def test_category_with_trailing_newline_is_rejected() -> None:
    raw = {"type": "page_view", "eventId": "e1", "visitorId": "v1"}
    problems = parse_event(
        {**raw, "properties": {"category": "outdoor\n"}},
        0,
        now=datetime(2026, 6, 1, tzinfo=UTC),
        max_skew=timedelta(days=1),
    )
    assert isinstance(problems, list)
    assert [p.field for p in problems] == ["properties.category"]


# 4 -------------------------------------------------------------------------------
def test_bad_localized_override_is_reported_at_its_own_path() -> None:
    document = {
        "id": "v",
        "fields": {"heading": "Fine"},
        "localized": {"de-DE": {"heading": ""}},
    }
    with pytest.raises(ContentError) as info:
        parse_variant("hero", document, "blocks[0].variants[0]")
    # today: "blocks[0].variants[0].fields.heading", which names a field that is valid
    assert info.value.path == "blocks[0].variants[0].localized.de-DE.heading"


# 5 -------------------------------------------------------------------------------
class FailingStore:
    def __init__(self) -> None:
        self.error: Exception | None = ServerSelectionTimeoutError("down")

    async def get(self, visitor_id: str) -> dict[str, object] | None:
        if self.error is not None:
            raise self.error
        return None


async def test_recovery_log_counts_this_incidents_fallbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="profiles.reader")
    store = FailingStore()
    now = [0.0]
    reader = BudgetedProfileReader(
        store,
        failures_to_open=100,
        clock=lambda: now[0],  # type: ignore[arg-type]
    )
    for fallbacks in (5, 2):
        store.error = ServerSelectionTimeoutError("down")
        for _ in range(fallbacks):
            await reader.read("v1")
        store.error = None
        await reader.read("v1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "5 requests" in warnings[0]
    assert "2 requests" in warnings[1]  # today: "7 requests" (the counter is never reset)
