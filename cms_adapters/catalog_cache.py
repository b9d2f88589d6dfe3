"""The product catalogue in memory, read through the CMS adapter and refreshed in the background.

Pages turn recommended product ids into tiles from here, so a page never
waits on the CMS for its catalogue. It is read at start-up (waited for at
most `startup_wait` seconds: a slow or failing CMS delays no start-up, the
read goes on in the background) and every `refresh` seconds; while the CMS
cannot be read the last copy stays. A CMS without a catalogue
(`CatalogNotConfigured`) is logged once and not asked again: recommendations
then have no products to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from blocks.catalog import Catalog
from cms_adapters.base import CMSAdapter
from cms_adapters.errors import CatalogNotConfigured, CMSError
from common.service import Service, cancel

logger = logging.getLogger(__name__)


class CatalogCache(Service):
    """The adapter's catalogue, refreshed every `refresh` seconds."""

    def __init__(self, adapter: CMSAdapter, *, refresh: float, startup_wait: float = 2.0) -> None:
        self._adapter = adapter
        self._refresh = refresh
        self._startup_wait = startup_wait
        self._first = asyncio.Event()
        self._catalog: Catalog | None = None
        self._task: asyncio.Task[None] | None = None
        self._problem: str | None = None
        #: False once the CMS said it has no catalogue.
        self.configured = True

    @property
    def current(self) -> Catalog | None:
        """The latest catalogue read, or None before the first (or without one)."""
        return self._catalog

    async def refresh(self) -> Catalog | None:
        """Read the catalogue now; keeps the last copy when the CMS fails."""
        try:
            catalog = await self._adapter.fetch_catalog()
        except CatalogNotConfigured as exc:
            self.configured = False
            logger.info("no product catalogue, recommendations show no products: %s", exc)
            return None
        except CMSError as exc:
            problem = str(exc)
            if problem != self._problem:
                logger.warning("product catalogue not refreshed, keeping the last: %s", exc)
            self._problem = problem
            return self._catalog
        if catalog.problems and self._catalog is None:
            logger.warning(
                "product catalogue: %d product(s) left out, first: %s",
                len(catalog.problems),
                catalog.problems[0],
            )
        self._problem = None
        self._catalog = catalog
        return catalog

    async def start(self) -> None:
        """Start reading (waiting `startup_wait` seconds at most), then keep it fresh."""
        self._task = asyncio.create_task(self._loop(), name="catalog-refresh")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), self._startup_wait)

    async def aclose(self) -> None:
        """Stop refreshing."""
        await cancel(self._task)
        self._task = None

    async def _loop(self) -> None:
        first = True
        while self.configured:
            if not first:
                await asyncio.sleep(self._refresh)
            try:
                await self.refresh()
            except Exception:  # never let the refresher die: the copy would go stale for good
                logger.exception("product catalogue refresh failed")
            finally:
                first = False
                self._first.set()
