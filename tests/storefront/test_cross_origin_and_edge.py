"""The storefront calling the API on another origin, and the production build behind Varnish."""

from __future__ import annotations

from typing import Any

import pytest

from tests.storefront.conftest import Stack, browse, scenario


@pytest.fixture(scope="module")
def cross(node: str, chromium: object, cross_origin_app: Stack) -> dict[str, Any]:
    return browse(node, cross_origin_app, "cross-origin")


@pytest.fixture(scope="module")
def edge(node: str, chromium: object, edge_stack: Stack) -> dict[str, Any]:
    return browse(node, edge_stack, "edge")


def test_cross_origin_pages_and_events_name_one_visitor(
    cross: dict[str, Any], cross_origin_app: Stack
) -> None:
    """The app on localhost:<port> calls the gateway's origin with credentials (CORS_ORIGINS)."""
    first = scenario(cross, "newVisitor")
    assert first["hero"] == "Welcome! 15% off your first order"
    seen = scenario(cross, "clickAndViews")
    # The cookie lives on the API's host; the app learnt the same id from `visitor { id }`.
    assert seen["visitorId"] == seen["cookie"]
    clicks = [e for e in seen["events"] if e["type"] == "click"]
    assert [(c["blockId"], c["page"]) for c in clicks] == [("home-products", "/")]
    held = cross_origin_app.export(seen["visitorId"])
    assert held["profiles"][0]["traits"]["clicks"] == 1
    # Every event the browser sent, and the pages it was shown, were for that one visitor.
    assert {e["visitorId"] for e in held["events"]} == {seen["visitorId"]}
    assert {x["visitorId"] for x in held["exposures"]} <= {seen["visitorId"]}
    assert cross["consoleErrors"] == []


def test_the_build_behind_varnish_on_trusted_documents(edge: dict[str, Any]) -> None:
    seen = scenario(edge, "edge")
    first, second = seen["caches"]
    # Every page came through: the gateway runs only the manifest's documents,
    # so the app sent exactly those (by hash).
    assert first["state"]["slug"] == second["state"]["slug"] == "about"
    assert first["state"]["cacheScope"] == "PUBLIC"
    # A public page: the first visitor's answer is the second one's, from Varnish.
    assert [a["xCache"] for a in first["answers"]] == ["MISS"]
    assert [a["xCache"] for a in second["answers"]] == ["HIT"]
    assert seen["home"]["hero"] == "Welcome! 15% off your first order"
    assert seen["cartCount"] == "1"
    assert edge["consoleErrors"] == []
