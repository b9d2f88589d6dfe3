"""Webhook authenticity checks, as each vendor documents them.

- shared secret in a header (Strapi, Directus, filesystem): constant-time compare;
- Contentful request verification: HMAC-SHA256 (hex) of the canonical request
  `METHOD <LF> path <LF> name:value;name:value <LF> body` over the headers listed in
  `x-contentful-signed-headers`, sent in `x-contentful-signature`, with
  `x-contentful-timestamp` (milliseconds) bounding replays;
- Sanity: `sanity-webhook-signature: t=<ms>,v1=<base64url HMAC-SHA256 of "t.body">`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from cms_adapters.base import WebhookRequest
from cms_adapters.errors import WebhookRejected

#: How old (or how far in the future) a signed webhook may be, in seconds.
DEFAULT_TOLERANCE = 300.0

_SANITY_HEADER = re.compile(r"^t=(\d+)[, ]+v1=([^, ]+)$")


def secrets_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected secret never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def require_secret(cms: str, given: str | None, expected: str, header: str) -> None:
    """Raise WebhookRejected unless the shared secret in `header` matches."""
    if not expected:
        raise WebhookRejected(cms, "no webhook secret is configured")
    if given is None:
        raise WebhookRejected(cms, f"missing {header}")
    if not secrets_match(given, expected):
        raise WebhookRejected(cms, f"wrong {header}")


def _fresh(cms: str, timestamp_ms: int, now: float, tolerance: float) -> None:
    if abs(now - timestamp_ms / 1000.0) > tolerance:
        raise WebhookRejected(cms, "signature timestamp outside the accepted window")


def contentful_signature(
    secret: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> str:
    """The hex HMAC-SHA256 Contentful sends for this canonical request."""
    joined = ";".join(f"{name}:{value}" for name, value in headers)
    canonical = f"{method.upper()}\n{path}\n{joined}\n".encode() + body
    return hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def verify_contentful(
    request: WebhookRequest, secret: str, *, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> None:
    """Raise WebhookRejected unless the Contentful request signature is valid."""
    cms = "contentful"
    if not secret:
        raise WebhookRejected(cms, "no webhook signing secret is configured")
    signature = request.header("x-contentful-signature")
    signed = request.header("x-contentful-signed-headers")
    timestamp = request.header("x-contentful-timestamp")
    if not signature or not signed or not timestamp:
        raise WebhookRejected(cms, "missing x-contentful-signature, -signed-headers or -timestamp")
    names = [name.strip().lower() for name in signed.split(",") if name.strip()]
    if "x-contentful-timestamp" not in names:
        raise WebhookRejected(cms, "the timestamp header is not signed")
    if not timestamp.isdigit():
        raise WebhookRejected(cms, "x-contentful-timestamp is not a number")
    _fresh(cms, int(timestamp), now, tolerance)
    headers = [(name, request.header(name) or "") for name in names]
    path = request.path + (f"?{request.query}" if request.query else "")
    expected = contentful_signature(secret, request.method, path, headers, request.body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise WebhookRejected(cms, "wrong x-contentful-signature")


def sanity_signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The `sanity-webhook-signature` header value Sanity sends for `body`."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256).digest()
    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"t={timestamp_ms},v1={encoded}"


def verify_sanity(
    request: WebhookRequest, secret: str, *, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> None:
    """Raise WebhookRejected unless the Sanity webhook signature is valid."""
    cms = "sanity"
    if not secret:
        raise WebhookRejected(cms, "no webhook secret is configured")
    header = request.header("sanity-webhook-signature")
    if not header:
        raise WebhookRejected(cms, "missing sanity-webhook-signature")
    match = _SANITY_HEADER.match(header.strip())
    if match is None:
        raise WebhookRejected(cms, "sanity-webhook-signature is not 't=<ms>,v1=<signature>'")
    timestamp = int(match.group(1))
    _fresh(cms, timestamp, now, tolerance)
    expected = sanity_signature(secret, timestamp, request.body)
    if not hmac.compare_digest(expected.encode(), f"t={timestamp},v1={match.group(2)}".encode()):
        raise WebhookRejected(cms, "wrong sanity-webhook-signature")
