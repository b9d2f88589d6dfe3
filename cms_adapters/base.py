"""The adapter protocol every CMS implements.

An adapter is a small class with one async protocol method, `fetch_page`
(by slug; `preview=True` for drafts), plus `list_pages` for tools that walk
the whole site, `fetch_catalog` for the product catalogue recommendations
draw from (`blocks.catalog`; adapters without one raise
`CatalogNotConfigured`), `parse_webhook` that authenticates a publish
webhook and names the pages and blocks it changed (`resolve_webhook`, its
async form, may ask the CMS which pages the changed items belong to), and
`aclose()` with `async with` support for
the clients it holds. Locales travel inside the page (`locales`, `titles`,
each variant's `localized` overrides), so one fetch serves every locale.

An adapter maps the CMS's own entries to the canonical model with
`blocks.parse.parse_page`, and translates every vendor failure into the
exceptions of `cms_adapters.errors`.

Example: an adapter over an in-memory dict of page documents::

    from blocks.parse import ContentError, ParsedPage, parse_page
    from cms_adapters.base import ChangedKeys, CMSAdapter, WebhookRequest
    from cms_adapters.errors import ContentNotFound, MalformedContent, WebhookRejected
    from cms_adapters.webhooks import secrets_match


    class DictAdapter(CMSAdapter):
        name = "dict"

        def __init__(self, documents: dict[str, dict]) -> None:
            self._documents = documents

        async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
            document = self._documents.get(slug)
            if document is None:
                raise ContentNotFound(self.name, "no such page", entry=slug)
            try:
                return parse_page(document, source=slug)
            except ContentError as exc:
                raise MalformedContent(
                    self.name, exc.message, entry=slug, field=exc.path
                ) from None

        async def list_pages(self) -> list[str]:
            return sorted(self._documents)

        def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
            # Verify the sender first: raise WebhookRejected on a missing or
            # wrong secret, and only then read the payload.
            if not secrets_match(request.bearer_token(), "s3cret"):
                raise WebhookRejected(self.name, "missing or wrong bearer token")
            return ChangedKeys(pages=frozenset(request.json(self.name).get("pages", [])))


    async with DictAdapter({"home": {...}}) as cms:
        parsed = await cms.fetch_page("home")
        print(parsed.page.title, [block.id for block in parsed.page.blocks])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from blocks.catalog import Catalog
from blocks.parse import ParsedPage
from cms_adapters.errors import CatalogNotConfigured, MalformedContent, WebhookRejected
from common.json_input import JSONInputError, loads


@dataclass(frozen=True, slots=True)
class ChangedKeys:
    """What a publish webhook changed: page slugs, block ids, or everything."""

    pages: frozenset[str] = frozenset()
    blocks: frozenset[str] = frozenset()
    everything: bool = False

    @property
    def empty(self) -> bool:
        """True when nothing needs invalidating."""
        return not (self.pages or self.blocks or self.everything)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of an incoming webhook HTTP request an adapter may verify."""

    method: str
    path: str
    #: Header names lower-cased.
    headers: Mapping[str, str]
    body: bytes
    query: str = ""
    received_at: float = field(default=0.0)

    def header(self, name: str) -> str | None:
        """The header `name` (case-insensitive), or None."""
        return self.headers.get(name.lower())

    def bearer_token(self) -> str | None:
        """The token of an `Authorization: Bearer <token>` header, or None."""
        value = self.header("authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def json(self, cms: str) -> dict[str, Any]:
        """The body as a JSON object; MalformedContent otherwise."""
        try:
            document = loads(self.body)
        except JSONInputError as exc:
            raise MalformedContent(
                cms, f"webhook body is not JSON: {exc}", entry="webhook"
            ) from None
        if not isinstance(document, dict):
            raise MalformedContent(cms, "webhook body must be a JSON object", entry="webhook")
        return document


class CMSAdapter(ABC):
    """Base class of CMS adapters: fetch pages as canonical `ParsedPage`s."""

    #: Short CMS name used in error messages, metrics and configuration.
    name: str = "cms"

    @abstractmethod
    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        """Fetch the page `slug` with all its blocks and variants.

        With `preview=True`, draft (unpublished) content where the CMS has it.
        Raises `ContentNotFound` for an unknown slug and another `CMSError`
        for any other failure.
        """

    @abstractmethod
    async def list_pages(self) -> list[str]:
        """The slugs of every page the CMS holds."""

    async def fetch_catalog(self) -> Catalog:
        """Every product of the catalogue, mapped with `blocks.catalog.parse_catalog`.

        Raises `CatalogNotConfigured` when the CMS holds none (the default),
        another `CMSError` when it cannot be read now.
        """
        raise CatalogNotConfigured(self.name, "this CMS adapter reads no product catalogue")

    def parse_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Authenticate a publish webhook and name what it changed.

        Raises `WebhookRejected` when the sender cannot be verified (checked
        before the payload is read) and `MalformedContent` for a bad payload.
        The default accepts no webhook at all.
        """
        raise WebhookRejected(self.name, "this CMS does not accept webhooks")

    async def resolve_webhook(self, request: WebhookRequest) -> ChangedKeys:
        """Authenticate a webhook and name exactly what it changed, asking the CMS if need be.

        Where a payload names only item ids (Directus sends just the changed
        fields), an adapter looks the items up and names their pages; the
        default trusts `parse_webhook`. Raises what `parse_webhook` raises.
        """
        return self.parse_webhook(request)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release the adapter's clients; the default holds none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
