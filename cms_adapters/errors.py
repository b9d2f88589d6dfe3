"""Tessera's own CMS exceptions; adapters translate vendor errors into these.

CMSError                 any failure talking to, or reading from, a CMS
├── ContentNotFound      no such page/entry (a normal answer, not an outage)
├── CMSUnauthorized      credentials refused
├── CMSRateLimited       the CMS asked us to slow down (`retry_after` seconds)
├── CMSUnavailable       the CMS is down, timing out or answering 5xx
├── MalformedContent     the CMS answered, but the content cannot become a page
└── CatalogNotConfigured the CMS holds no product catalogue (recommendations have no products)

WebhookRejected          a webhook whose sender could not be verified (not a CMSError)
"""

from __future__ import annotations


class CMSError(Exception):
    """Base of every CMS failure; names the CMS and, when known, the entry."""

    def __init__(self, cms: str, message: str, *, entry: str | None = None) -> None:
        where = f"{cms}" + (f" entry {entry!r}" if entry else "")
        super().__init__(f"{where}: {message}")
        self.cms = cms
        self.entry = entry
        self.message = message


class ContentNotFound(CMSError):
    """The CMS has no such page or entry."""


class CMSUnauthorized(CMSError):
    """The CMS refused our credentials."""


class CMSRateLimited(CMSError):
    """The CMS rate-limited us; retry after `retry_after` seconds if known."""

    def __init__(
        self, cms: str, message: str, *, entry: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(cms, message, entry=entry)
        self.retry_after = retry_after


class CMSUnavailable(CMSError):
    """The CMS could not be reached, timed out or failed on its side."""


class MalformedContent(CMSError):
    """The content exists but is not valid; `field` is the path at fault."""

    def __init__(
        self, cms: str, message: str, *, entry: str | None = None, field: str = ""
    ) -> None:
        super().__init__(cms, f"{field}: {message}" if field else message, entry=entry)
        self.field = field


class CatalogNotConfigured(CMSError):
    """The CMS (or its configuration) has no product catalogue to read."""


class WebhookRejected(Exception):
    """A webhook without a valid secret or signature; it must change nothing."""

    def __init__(self, cms: str, reason: str) -> None:
        super().__init__(f"{cms} webhook rejected: {reason}")
        self.cms = cms
        self.reason = reason
