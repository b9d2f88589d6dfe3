"""The experiment registry follows the content, not a replica's history; the sweep fills it."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import pytest

from blocks.audiences import AudienceSet
from blocks.context import RequestFacts, TargetingContext, build_context
from blocks.experiments import Allocation, Experiment
from blocks.parse import ParsedPage
from cms_adapters.cache_backend import open_cache
from cms_adapters.content_cache import ContentCache
from cms_adapters.errors import CMSUnavailable, MalformedContent
from cms_adapters.filesystem import FilesystemAdapter
from delivery.experiment_registry import MAX_EXPERIMENTS, ExperimentRegistry, ExperimentSweep
from gateway.settings import DEMO_CONTENT_DIR
from tests.conftest import FIXED_NOW


async def _sale_experiment() -> Experiment:
    async with FilesystemAdapter(DEMO_CONTENT_DIR) as adapter:
        parsed = await adapter.fetch_page("sale")
    (experiment,) = parsed.page.experiments
    return experiment


def _context(visitor: str = "v-1") -> TargetingContext:
    return build_context(
        request=RequestFacts(visitor_id=visitor),
        profile=None,
        audiences=AudienceSet(),
        now=FIXED_NOW,
        locale="en-US",
    )


def _keys(registry: ExperimentRegistry) -> list[str]:
    return [key for key, _ in registry.arms(_context(), Allocation())]


async def test_a_page_served_again_replaces_its_experiments() -> None:
    sale = await _sale_experiment()
    registry = ExperimentRegistry()
    registry.page("sale", (sale,))
    assert _keys(registry) == ["sale-hero-headline"]
    renamed = dataclasses.replace(sale, key="sale-hero-v2")
    registry.page("sale", (renamed,))
    # The experiment that left the page leaves the key (it stayed forever before).
    assert _keys(registry) == ["sale-hero-v2"]
    registry.page("sale", ())
    assert _keys(registry) == []
    assert len(registry) == 0


async def test_the_known_set_does_not_depend_on_the_order_pages_were_served() -> None:
    sale = await _sale_experiment()
    other = dataclasses.replace(sale, key="sale-hero-headline", coverage=0.5)
    first, second = ExperimentRegistry(), ExperimentRegistry()
    first.page("sale", (sale,))
    first.page("winter", (other,))
    second.page("winter", (other,))
    second.page("sale", (sale,))
    # The same key on two pages: the first slug's definition, whoever served what last.
    context = _context("v-order")
    assert first.arms(context, Allocation()) == second.arms(context, Allocation())
    assert first._known()["sale-hero-headline"] is sale


async def test_forget_and_retain() -> None:
    sale = await _sale_experiment()
    registry = ExperimentRegistry()
    registry.page("sale", (sale,))
    registry.page("b", (dataclasses.replace(sale, key="b-test"),))
    registry.retain(["b", "unrelated"])
    assert _keys(registry) == ["b-test"]
    registry.forget("b")
    assert _keys(registry) == []


async def test_beyond_the_cap_the_keys_sorting_last_leave() -> None:
    sale = await _sale_experiment()
    registry = ExperimentRegistry()
    for n in range(MAX_EXPERIMENTS + 3):
        registry.page(f"p{n:04}", (dataclasses.replace(sale, key=f"e{n:04}"),))
    keys = _keys(registry)
    assert len(keys) == MAX_EXPERIMENTS
    assert keys == sorted(keys)
    assert keys[-1] == f"e{MAX_EXPERIMENTS - 1:04}"


async def test_the_sweep_reads_every_published_page_and_drops_removed_ones(
    tmp_path: Path,
) -> None:
    content = tmp_path / "content"
    shutil.copytree(DEMO_CONTENT_DIR, content)
    registry = ExperimentRegistry()
    adapter = FilesystemAdapter(content)
    cache = ContentCache(adapter, open_cache("memory://"), ttl=60.0)
    sweep = ExperimentSweep(registry, adapter, cache, interval=3600)
    assert await sweep.sweep() is True
    assert _keys(registry) == ["sale-hero-headline"]
    assert cache.metrics.misses == len(await adapter.list_pages()) > sweep.concurrency
    assert await sweep.sweep() is True
    assert cache.metrics.misses == len(await adapter.list_pages())  # a second sweep: all cached
    (content / "pages" / "sale.yaml").unlink()
    assert await sweep.sweep() is True
    assert _keys(registry) == []


class _Unlisting(FilesystemAdapter):
    async def list_pages(self) -> list[str]:
        raise CMSUnavailable(self.name, "down for maintenance")


async def test_a_cms_that_cannot_list_its_pages_leaves_the_registry_as_it_was(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ExperimentRegistry()
    registry.page("sale", (await _sale_experiment(),))
    adapter = _Unlisting(DEMO_CONTENT_DIR)
    sweep = ExperimentSweep(
        registry, adapter, ContentCache(adapter, open_cache("memory://"), ttl=60.0), interval=3600
    )
    assert await sweep.sweep() is False
    assert _keys(registry) == ["sale-hero-headline"]
    assert "did not list its pages" in caplog.text


async def test_an_equal_copy_of_a_page_changes_nothing() -> None:
    sale = await _sale_experiment()
    registry = ExperimentRegistry()
    registry.page("sale", (sale,))
    known = registry._known()
    # What a Redis-backed content cache hands out on every read: an unpickled copy.
    registry.page("sale", pickle.loads(pickle.dumps((sale,))))
    assert registry._known() is known
    registry.page("sale", (dataclasses.replace(sale, coverage=0.5),))
    assert registry._known() is not known


class _Failing(FilesystemAdapter):
    """The demo content, with one page failing as `error` says."""

    def __init__(self, slug: str, error: Exception) -> None:
        super().__init__(DEMO_CONTENT_DIR)
        self.slug, self.error, self.fetched = slug, error, 0

    async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
        self.fetched += 1
        if slug == self.slug:
            raise self.error
        return await super().fetch_page(slug, preview=preview)


def _sweep(adapter: FilesystemAdapter, registry: ExperimentRegistry) -> ExperimentSweep:
    cache = ContentCache(adapter, open_cache("memory://"), ttl=60.0)
    return ExperimentSweep(registry, adapter, cache, interval=3600, concurrency=2)


async def test_a_malformed_page_leaves_the_registry_on_every_replica_alike() -> None:
    registry = ExperimentRegistry()
    registry.page("sale", (await _sale_experiment(),))
    adapter = _Failing("sale", MalformedContent("filesystem", "bad variant", entry="sale"))
    assert await _sweep(adapter, registry).sweep() is True
    # As a replica started now concludes, which never saw the page well formed.
    assert _keys(registry) == []


async def test_a_cms_that_fails_stops_the_sweep_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ExperimentRegistry()
    registry.page("sale", (await _sale_experiment(),))
    registry.page("gone", (dataclasses.replace(await _sale_experiment(), key="gone-test"),))
    adapter = _Failing("about", CMSUnavailable("filesystem", "503 from upstream"))
    slugs = await adapter.list_pages()
    assert await _sweep(adapter, registry).sweep() is False
    # Not every page was asked for, and nothing was forgotten (not even a removed page).
    assert adapter.fetched < len(slugs)
    assert _keys(registry) == ["gone-test", "sale-hero-headline"]
    assert "experiment sweep stopped, the CMS failed" in caplog.text


async def test_an_unexpected_error_on_one_page_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ExperimentRegistry()
    registry.page("gone", (dataclasses.replace(await _sale_experiment(), key="gone-test"),))
    adapter = _Failing("about", ZeroDivisionError("a bug"))
    assert await _sweep(adapter, registry).sweep() is True
    assert adapter.fetched == len(await adapter.list_pages())
    assert _keys(registry) == ["sale-hero-headline"]
    assert "reading page 'about' failed" in caplog.text


async def test_a_page_served_during_a_sweep_is_not_dropped_by_its_end() -> None:
    registry = ExperimentRegistry()
    sale = await _sale_experiment()

    class _Slow(FilesystemAdapter):
        async def list_pages(self) -> list[str]:
            return ["sale"]  # listed before the page "new" was published

        async def fetch_page(self, slug: str, *, preview: bool = False) -> ParsedPage:
            # Meanwhile a visitor is served the new page with an experiment of its own.
            registry.page("new", (dataclasses.replace(sale, key="new-test"),))
            return await super().fetch_page(slug, preview=preview)

    assert await _sweep(_Slow(DEMO_CONTENT_DIR), registry).sweep() is True
    assert _keys(registry) == ["new-test", "sale-hero-headline"]
