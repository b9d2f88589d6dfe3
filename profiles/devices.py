"""Classify a device from its User-Agent: one set of rules for events and requests."""

from __future__ import annotations

import re

# Tablets first: their user agents often also say "Mobile".
_TABLET = re.compile(r"iPad|Tablet|PlayBook|Silk|(Android(?!.*Mobile))", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android|Windows Phone|Opera Mini", re.IGNORECASE)


def classify_device(user_agent: str | None, mobile_hint: str | None = None) -> str:
    """`mobile`, `tablet` or `desktop` from the User-Agent and `Sec-CH-UA-Mobile`."""
    if mobile_hint == "?1":
        return "mobile"
    if not user_agent:
        return "desktop"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"
