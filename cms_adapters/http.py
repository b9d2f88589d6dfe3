"""What the HTTP adapters share: one AsyncClient, bounded retries, error translation.

Retries: on 429, 5xx, timeouts and connection errors, up to `retries` more
attempts with exponential backoff (`backoff * 2**attempt`), or as long as the
CMS asks (`Retry-After`, seconds or an HTTP date; Contentful's
`X-Contentful-RateLimit-Reset`), as long as that is no more than `max_wait`
seconds; a longer wait gives up at once with `CMSRateLimited`/`CMSUnavailable`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from cms_adapters.base import CMSAdapter
from cms_adapters.errors import (
    CMSRateLimited,
    CMSUnauthorized,
    CMSUnavailable,
    ContentNotFound,
    MalformedContent,
)

Sleep = Callable[[float], Awaitable[None]]


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the CMS asks us to wait, from its rate-limit headers; None if unsaid."""
    for name in ("x-contentful-ratelimit-reset", "retry-after"):
        value = response.headers.get(name)
        if value is None:
            continue
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, moment.timestamp() - (time.time() if now is None else now))
    return None


class HttpAdapter(CMSAdapter):
    """Base of the HTTP adapters: `_get_json` with retries and translated errors."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        max_wait: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep
        #: Requests sent, retries included (for tests and metrics).
        self.requests = 0

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self.client.aclose()

    def _error_message(self, response: httpx.Response) -> str:
        """The vendor's own error message, when its body carries one."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:200] or response.reason_phrase
        return describe_error(body) or response.reason_phrase

    async def _get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        entry: str,
    ) -> Any:
        """GET `path` and return its JSON body; raises a CMSError on any failure."""
        attempt = 0
        while True:
            self.requests += 1
            wait: float | None = None
            failure: Exception
            try:
                response = await self.client.get(path, params=params, headers=headers)
            except httpx.TimeoutException:
                failure = CMSUnavailable(self.name, "request timed out", entry=entry)
            except httpx.TransportError as exc:
                failure = CMSUnavailable(self.name, f"cannot connect: {exc}", entry=entry)
            else:
                status = response.status_code
                if status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise MalformedContent(
                            self.name, "response body is not JSON", entry=entry
                        ) from None
                message = self._error_message(response)
                if status in (401, 403):
                    raise CMSUnauthorized(self.name, f"HTTP {status}: {message}", entry=entry)
                if status == 404:
                    raise ContentNotFound(self.name, f"HTTP 404: {message}", entry=entry)
                wait = retry_after(response)
                if status == 429:
                    failure = CMSRateLimited(
                        self.name, f"HTTP 429: {message}", entry=entry, retry_after=wait
                    )
                elif status >= 500:
                    failure = CMSUnavailable(self.name, f"HTTP {status}: {message}", entry=entry)
                else:
                    raise MalformedContent(
                        self.name, f"HTTP {status}: {message}", entry=entry, field="request"
                    )
            if attempt >= self.retries:
                raise failure
            delay = self.backoff * 2**attempt if wait is None else wait
            if delay > self.max_wait:
                raise failure
            attempt += 1
            await self._sleep(delay)


def describe_error(body: Any) -> str:
    """Pull a human message out of the error bodies the four vendors send."""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    if isinstance(message, str):
        return message
    error = body.get("error")
    if isinstance(error, dict):
        for key in ("message", "description"):
            if isinstance(error.get(key), str):
                return str(error[key])
    if isinstance(error, str):
        return error
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", ""))
    return ""


class BearerHttpAdapter(HttpAdapter):
    """An HTTP adapter for a self-hosted CMS reached at `url` with a bearer token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        webhook_secret: str = "",
        timeout: float = 5.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        super().__init__(
            url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            retries=retries,
            transport=transport,
            **extra,
        )
        self._url = url.rstrip("/")
        self._webhook_secret = webhook_secret
