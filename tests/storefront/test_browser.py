"""The storefront in headless Chromium, on the dev server the documented command starts.

One run of e2e/storefront.mjs (suite `dev`) plays each scenario as a new
visitor; these tests check what the browser showed and what reached the
gateway (`exportVisitor`, admin key).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.storefront.conftest import Stack, browse, scenario


@pytest.fixture(scope="module")
def report(node: str, chromium: object, dev_stack: Stack) -> dict[str, Any]:
    return browse(node, dev_stack, "dev")


def hero_of(state: dict[str, Any]) -> dict[str, Any]:
    (hero,) = [b for b in state["blocks"] if b["blockId"] == "home-hero"]
    return hero


def test_a_new_visitor_sees_the_welcome_hero(report: dict[str, Any]) -> None:
    seen = scenario(report, "newVisitor")
    assert seen["hero"] == "Welcome! 15% off your first order"
    hero = hero_of(seen["state"])
    assert (hero["variantId"], hero["reason"]) == ("welcome-offer", "audience:new_visitor")
    assert seen["state"]["personalized"] is True
    assert seen["consentBanner"] is True
    # The id the app shows is the cookie the gateway minted for this browser.
    assert seen["visitorId"] == seen["cookie"]


def test_after_add_to_cart_leaving_and_coming_back_shows_the_cart_reminder(
    report: dict[str, Any], dev_stack: Stack
) -> None:
    seen = scenario(report, "cartReturn")
    assert seen["countAfterAdd"] == "1"
    assert seen["hero"] == "You left something behind"
    assert hero_of(seen["state"])["reason"] == "audience:cart_abandoner"
    assert seen["cartCount"] == "1"
    held = dev_stack.export(seen["visitorId"])
    (added,) = [e for e in held["events"] if e["type"] == "add_to_cart"]
    assert (added["blockId"], added["variantId"]) == ("product-tent-2p-detail", "default")
    assert added["properties"] | {"pageViewId": ""} == {
        "productId": "TENT-2P",
        "price": 329.0,
        "quantity": 1,
        "category": "outdoor",
        "currency": "USD",
        "pageViewId": "",
    }
    # Then the visitor bought it from the cart page: one order, an empty cart.
    assert seen["countAfterPurchase"] == "0"
    (purchase,) = [e for e in held["events"] if e["type"] == "purchase"]
    assert purchase["properties"]["revenue"] == 329.0
    profile = held["profiles"][0]
    assert (profile["traits"]["orders"], profile["traits"]["ltv"]) == (1, 329.0)
    assert profile["cart"]["items"] == 0


def test_a_visitor_from_germany_sees_the_dach_banner(report: dict[str, Any]) -> None:
    seen = scenario(report, "dach")
    assert seen["banner"] == "Free 2-day delivery to Germany, Austria and Switzerland."
    variants = {b["blockId"]: (b["variantId"], b["reason"]) for b in seen["state"]["blocks"]}
    assert variants["site-banner"] == ("dach-shipping", "audience:dach")
    assert variants["store-finder"] == ("dach-stores", "audience:dach")


def test_withdrawn_consent_gives_default_variants_unpersonalized(
    report: dict[str, Any], dev_stack: Stack
) -> None:
    seen = scenario(report, "consent")
    assert seen["before"]["hero"] == "Welcome! 15% off your first order"
    assert seen["before"]["state"]["personalized"] is True
    after = seen["after"]["state"]
    assert after["personalized"] is False
    assert seen["after"]["hero"] == "Gear for every trail"
    assert {b["reason"] for b in after["blocks"]} == {"fallback:no-consent"}
    assert hero_of(after)["variantId"] == "default"
    # Reloaded: still the defaults, and the banner does not ask again.
    assert seen["reloaded"]["state"]["personalized"] is False
    assert seen["reloaded"]["banner"] == 0
    held = dev_stack.export(seen["visitorId"])
    assert [(c["analytics"], c["personalization"]) for c in held["consentHistory"]] == [
        (True, True),
        (False, False),
    ]
    assert held["profiles"][0]["consent"]["personalization"] is False


def test_a_click_reaches_the_profile_with_its_block_and_variant(
    report: dict[str, Any], dev_stack: Stack
) -> None:
    seen = scenario(report, "clickAndViews")
    assert seen["visitorId"] == seen["cookie"]
    clicks = [e for e in seen["events"] if e["type"] == "click"]
    assert [(c["blockId"], c["variantId"]) for c in clicks] == [
        ("home-products", seen["clickedVariant"])
    ]
    assert clicks[0]["properties"]["href"] == "/p/tent-2p"
    profile = dev_stack.export(seen["visitorId"])["profiles"][0]
    assert profile["traits"]["clicks"] == 1
    assert profile["counts"]["click"] == 1


def test_block_views_once_per_block_and_page_view(report: dict[str, Any]) -> None:
    seen = scenario(report, "clickAndViews")
    events = seen["events"]
    home_view = next(e for e in events if e["type"] == "page_view" and e["page"] == "/")
    views = [
        (e["blockId"], e["variantId"])
        for e in events
        if e["type"] == "block_view" and e["pageViewId"] == home_view["pageViewId"]
    ]
    # Scrolled to the bottom and back twice: every home block once, no more.
    assert len(views) == len(set(views))
    assert set(views) == {tuple(b) for b in seen["homeBlocks"]}
    assert len(views) >= 7
    assert ("home-hero", "welcome-offer") in views
    product_view = next(e for e in events if e["type"] == "page_view" and e["page"] != "/")
    assert product_view["page"] == "/p/tent-2p"
    assert product_view["pageViewId"] != home_view["pageViewId"]
    # Each event carries its own id.
    assert all(e["pageViewId"] for e in events)


def test_503_and_429_are_retried_with_the_same_event_ids(report: dict[str, Any]) -> None:
    seen = scenario(report, "retries")
    first, second, third = seen["attempts"][:3]
    assert first == second == third
    assert len(first) >= 1
    # Stored once, under the ids the client chose.
    assert sorted(seen["stored"]) == sorted(first)
    # The 503 asked for a second (Retry-After: 1).
    assert seen["seconds"] >= 1


def test_events_left_on_leaving_go_by_beacon(report: dict[str, Any]) -> None:
    seen = scenario(report, "beacon")
    assert [(s["via"], s["sent"]) for s in seen["sent"]] == [("beacon", True)]
    assert seen["sent"][0]["url"] == "/v1/events?key=…"
    assert seen["sent"][0]["type"].startswith("text/plain")
    assert "page_view" in seen["stored"]


def test_a_refused_beacon_falls_back_to_fetch_keepalive(report: dict[str, Any]) -> None:
    seen = scenario(report, "beaconRefused")
    beacon, fetch = seen["sent"]
    assert (beacon["via"], beacon["sent"]) == ("beacon", False)
    assert (fetch["via"], fetch["keepalive"]) == ("fetch", True)
    assert fetch["type"].startswith("text/plain")
    assert "page_view" in fetch["events"]
    assert "page_view" in seen["stored"]


def test_the_locale_switcher_keeps_the_page_and_changes_the_language(
    report: dict[str, Any],
) -> None:
    seen = scenario(report, "locales")
    assert seen["english"]["hero"] == "Tents and shelters"
    german = seen["german"]
    assert german["hero"] == "Zelte und Unterkünfte"
    assert german["state"]["locale"] == "de-DE"
    assert german["lang"] == "de-DE"
    assert german["title"] == "Zelte und Unterkünfte — Trailhead Outfitters"
    assert german["state"]["blocks"][0]["text"].startswith("Kostenloser Versand")
    assert seen["back"]["hero"] == "Tents and shelters"


def test_blocks_can_render_the_server_html(report: dict[str, Any]) -> None:
    seen = scenario(report, "serverHtml")
    assert seen["serverBlocks"] == 4
    assert seen["components"] == 0
    assert "Tents and shelters" in seen["text"]


def test_no_console_errors(report: dict[str, Any]) -> None:
    # The retry scenario answers 503 and 429 on purpose; Chromium logs those two.
    expected = {
        "Failed to load resource: the server responded with a status of 503 (Service Unavailable)",
        "Failed to load resource: the server responded with a status of 429 (Too Many Requests)",
    }
    errors = [
        e
        for e in report["consoleErrors"]
        if not (e["scenario"] == "retries" and e["text"] in expected)
    ]
    assert errors == []


def test_screenshots_are_kept(report: dict[str, Any]) -> None:
    from pathlib import Path

    for name in ("newVisitor", "cartReturn"):
        path = Path(scenario(report, name)["screenshot"])
        assert path.stat().st_size > 10_000, path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
