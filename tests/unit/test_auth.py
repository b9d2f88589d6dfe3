"""Keys, principals and bearer tokens."""

from __future__ import annotations

import pytest

from delivery.auth import (
    ADMIN,
    PREVIEWER,
    PUBLISHABLE,
    KeyRing,
    Permission,
    bearer_token,
    split_keys,
)

RING = KeyRing(admin=["adm-1", "adm-2"], preview=["prev"], publishable=["pub"])


@pytest.mark.parametrize(
    ("presented", "expected"),
    [
        ("adm-1", ADMIN),
        ("adm-2", ADMIN),
        ("prev", PREVIEWER),
        ("pub", PUBLISHABLE),
        ("nope", None),
        ("", None),
        (None, None),
        ("adm-1 ", None),
    ],
)
def test_authenticate(presented: str | None, expected: object) -> None:
    assert RING.authenticate(presented) == expected


def test_a_key_configured_twice_gets_the_larger_role() -> None:
    ring = KeyRing(admin=["k"], publishable=["k"])
    assert ring.authenticate("k") == ADMIN


def test_permissions() -> None:
    assert ADMIN.allows(Permission.INGEST)
    assert ADMIN.allows(Permission.PREVIEW)
    assert PUBLISHABLE.allows(Permission.INGEST)
    assert not PUBLISHABLE.allows(Permission.ADMIN)
    assert not PREVIEWER.allows(Permission.INGEST)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token({"authorization": header}) == token


def test_no_header_no_token() -> None:
    assert bearer_token({}) is None


def test_split_keys() -> None:
    assert split_keys(" a, b ,,c ") == ("a", "b", "c")
    assert split_keys("") == ()
    assert split_keys(None) == ()
