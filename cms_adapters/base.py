"""The adapter protocol every CMS implements.

An adapter is a small class with one async protocol method, `fetch_page`,
plus `list_pages` for tools that walk the whole site, and `aclose()` with
`async with` support for the clients it holds. It maps the CMS's own entries
to the canonical model with `blocks.parse.parse_page`, and translates every
vendor failure into the exceptions of `cms_adapters.errors`.

Example: an adapter over an in-memory dict of page documents::

    from blocks.parse import ContentError, ParsedPage, parse_page
    from cms_adapters.base import CMSAdapter
    from cms_adapters.errors import ContentNotFound, MalformedContent


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


    async with DictAdapter({"home": {...}}) as cms:
        parsed = await cms.fetch_page("home")
        print(parsed.page.title, [block.id for block in parsed.page.blocks])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from blocks.parse import ParsedPage


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
