"""What the request says about the visitor: device, country, referrer, UTM.

From the headers, overridden by what a server-side renderer passes in the
`context` argument (`RequestContext`), which wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from blocks.context import RequestFacts
from delivery.errors import BadUserInput
from profiles.devices import classify_device

# Country headers set by common CDNs and reverse proxies, most specific first.
COUNTRY_HEADERS = ("cf-ipcountry", "cloudfront-viewer-country", "x-country-code", "x-country")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Request facts a server-side renderer knows better than Tessera's headers."""

    device: str | None = None
    country: str | None = None
    path: str | None = None
    referrer: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)


def header_lookup(headers: Mapping[str, str] | None) -> Mapping[str, str]:
    """The headers as a dict: Starlette's `Headers` scans its list on every lookup."""
    if headers is None:
        return {}
    if isinstance(headers, dict):
        return headers
    found: dict[str, str] = {}
    for name, value in headers.items():
        found.setdefault(name, value)  # the first of repeated headers, as `Headers.get`
    return found


def valid_country(value: str | None) -> str | None:
    """The upper-cased country code; raises ValueError when it is not one."""
    if value is None:
        return None
    code = value.strip().upper()
    if not _COUNTRY.match(code):
        raise ValueError(f"context.country: {value!r} is not an ISO 3166-1 alpha-2 code")
    return code


def device_from_headers(user_agent: str | None, mobile_hint: str | None) -> str:
    """Classify the device from the User-Agent and the `Sec-CH-UA-Mobile` hint."""
    return classify_device(user_agent, mobile_hint)


def request_facts(
    headers: Mapping[str, str], visitor_id: str, context: RequestContext | None
) -> RequestFacts:
    """Combine the headers (lower-case names) with the explicit `context` (which wins)."""
    user_agent = headers.get("user-agent")
    device = device_from_headers(user_agent, headers.get("sec-ch-ua-mobile"))
    country_header = next((headers[h] for h in COUNTRY_HEADERS if h in headers), None)
    try:
        country = valid_country(country_header)
    except ValueError:
        country = None  # a proxy's odd value ("XX", "T1") is not the client's fault
    referrer = headers.get("referer")
    path: str | None = None
    utm: dict[str, str] = {}
    if context is not None:
        if context.device is not None:
            device = context.device
        if context.country is not None:
            try:
                country = valid_country(context.country)
            except ValueError as exc:
                raise BadUserInput(str(exc)) from None
        referrer = context.referrer or referrer
        path = context.path
        utm = {key: value for key, value in context.utm.items() if value}
    return RequestFacts(
        visitor_id=visitor_id,
        device=device,
        country=country,
        path=path,
        referrer=referrer,
        utm=utm,
        user_agent=user_agent,
    )
