"""What the HTTP request says about the visitor: device, country, referrer, UTM."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from blocks.context import RequestFacts
from profiles.devices import classify_device
from resolvers.errors import BadUserInput
from resolvers.inputs import RequestContextInput, valid_country

# Country headers set by common CDNs and reverse proxies, most specific first.
COUNTRY_HEADERS = ("cf-ipcountry", "cloudfront-viewer-country", "x-country-code", "x-country")


def device_from_headers(user_agent: str | None, mobile_hint: str | None) -> str:
    """Classify the device from the User-Agent and the `Sec-CH-UA-Mobile` hint."""
    return classify_device(user_agent, mobile_hint)


def request_facts(
    request: HTTPConnection, visitor_id: str, context: RequestContextInput | None
) -> RequestFacts:
    """Combine headers with the explicit `context` argument (which wins)."""
    headers = request.headers
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
            device = context.device.value
        if context.country is not None:
            try:
                country = valid_country(context.country)
            except ValueError as exc:
                raise BadUserInput(str(exc)) from None
        referrer = context.referrer or referrer
        path = context.path
        if context.utm is not None:
            utm = {
                key: value
                for key, value in vars(context.utm).items()
                if isinstance(value, str) and value
            }
    return RequestFacts(
        visitor_id=visitor_id,
        device=device,
        country=country,
        path=path,
        referrer=referrer,
        utm=utm,
        user_agent=user_agent,
    )
