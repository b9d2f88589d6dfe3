"""Visitor identification from the X-Visitor-Id header and the tsr_vid cookie."""

from __future__ import annotations

import re

import pytest

from gateway.visitor import COOKIE_NAME, identify

NEW_ID = re.compile(r"^[0-9a-f]{32}$")


def test_cookie_name() -> None:
    assert COOKIE_NAME == "tsr_vid"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("abc-123", id="simple"),
        pytest.param("user:42", id="colon"),
        pytest.param("a.b_c-D", id="punctuation"),
        pytest.param("x", id="one-char"),
        pytest.param("x" * 128, id="128-chars"),
        pytest.param("0" * 32, id="hex"),
    ],
)
def test_valid_header_id(header: str) -> None:
    visitor = identify(header, None)
    assert visitor is not None
    assert (visitor.id, visitor.source, visitor.is_new) == (header, "header", False)


def test_header_wins_over_cookie() -> None:
    visitor = identify("from-header", "tsr_vid=from-cookie")
    assert visitor is not None
    assert (visitor.id, visitor.source) == ("from-header", "header")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="129-chars"),
        pytest.param("has space", id="space"),
        pytest.param("a/b", id="slash"),
        pytest.param("ünïcode", id="non-ascii"),
        pytest.param("<script>", id="markup"),
        pytest.param("a;b", id="semicolon"),
        pytest.param("a\r\nSet-Cookie: x=1", id="header-injection"),
    ],
)
def test_invalid_header_id_is_rejected_even_with_a_valid_cookie(header: str) -> None:
    assert identify(header, None) is None
    assert identify(header, "tsr_vid=valid-cookie") is None


@pytest.mark.parametrize(
    ("cookie_header", "visitor_id"),
    [
        pytest.param("tsr_vid=abc123", "abc123", id="alone"),
        pytest.param("a=1; tsr_vid=abc123; b=2", "abc123", id="among-others"),
        pytest.param("tsr_vid=abc123;other=x", "abc123", id="no-space"),
        pytest.param('tsr_vid="abc123"', "abc123", id="quoted"),
        pytest.param("theme=dark; tsr_vid=user:42", "user:42", id="colon"),
    ],
)
def test_cookie_id(cookie_header: str, visitor_id: str) -> None:
    visitor = identify(None, cookie_header)
    assert visitor is not None
    assert (visitor.id, visitor.source, visitor.is_new) == (visitor_id, "cookie", False)


@pytest.mark.parametrize(
    "cookie_header",
    [
        pytest.param(None, id="no-cookie-header"),
        pytest.param("", id="empty"),
        pytest.param("other=1; theme=dark", id="no-visitor-cookie"),
        pytest.param("tsr_vid=", id="empty-value"),
        pytest.param("tsr_vid=a%2Fb", id="invalid-characters"),
        pytest.param("tsr_vid=" + "x" * 129, id="too-long"),
        pytest.param("xtsr_vid=abc", id="other-name"),
        pytest.param("garbage", id="garbage"),
        pytest.param(";;;", id="only-separators"),
        pytest.param("=", id="only-equals"),
        pytest.param('"', id="lone-quote"),
        pytest.param("tsr_vid=\x00\x01", id="control-characters"),
        pytest.param('tsr_vid="unterminated', id="unterminated-quote"),
    ],
)
def test_without_a_usable_cookie_a_new_id_is_minted(cookie_header: str | None) -> None:
    visitor = identify(None, cookie_header)
    assert visitor is not None
    assert visitor.source == "new"
    assert visitor.is_new
    assert NEW_ID.match(visitor.id)


def test_new_ids_are_unique() -> None:
    ids = {identify(None, None).id for _ in range(200)}  # type: ignore[union-attr]
    assert len(ids) == 200
    assert all(NEW_ID.match(visitor_id) for visitor_id in ids)


def test_minted_id_would_be_accepted_back_as_a_cookie() -> None:
    minted = identify(None, None)
    assert minted is not None
    again = identify(None, f"tsr_vid={minted.id}")
    assert again is not None
    assert (again.id, again.source) == (minted.id, "cookie")
