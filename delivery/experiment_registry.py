"""The experiments the published pages run, so an edge key can cover their arms.

An audience page under test is the same for every visitor with the same
facts *and the same arms*. The edge cannot know which experiments a page runs
before it has the page, so the visitor's key (the `tsr_ek` cookie) covers
their arm in every experiment the registry knows. A page that brings a new
experiment changes every key once: visitors then get that page privately,
with their new key, and share it from the next request on.

Replicas must know the same experiments, or a visitor's key computed by one
is refused by the next (private pages and a new cookie on every switch of
replica). So what the registry knows is a function of the content, not of
a replica's history: each page's experiments replace that page's previous
ones when the page is served, and `ExperimentSweep` reads every published
page at start and then periodically, dropping pages the CMS no longer lists.
A replica that has served a page since removed from the CMS, or one started
before an experiment ended, converges to the others within one sweep.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from blocks.context import TargetingContext
from blocks.experiments import Allocation, Experiment, hash_attributes, run_experiment
from cms_adapters.base import CMSAdapter
from cms_adapters.content_cache import ContentCache
from cms_adapters.errors import CMSError, ContentNotFound, MalformedContent
from common.service import Service, cancel

logger = logging.getLogger(__name__)

#: Plenty for any site; beyond it the experiments whose keys sort last leave the key
#: (pages under them are answered privately).
MAX_EXPERIMENTS = 256


class ExperimentRegistry:
    """Experiments by page slug, as last read from the content."""

    def __init__(self) -> None:
        self._pages: dict[str, tuple[Experiment, ...]] = {}
        self._experiments: dict[str, Experiment] | None = {}

    def __len__(self) -> int:
        return len(self._known())

    def page(self, slug: str, experiments: tuple[Experiment, ...]) -> None:
        """Record the experiments page `slug` runs now (none: the page is forgotten)."""
        current = self._pages.get(slug, ())
        if current is experiments or current == experiments:
            # The same page again, the request path's common case (equal, not identical,
            # when the content cache lives in Redis and each read unpickles a new copy).
            return
        if experiments:
            self._pages[slug] = experiments
        else:
            self._pages.pop(slug, None)
        self._experiments = None

    def forget(self, slug: str) -> None:
        """Forget page `slug` (it no longer exists)."""
        if self._pages.pop(slug, None) is not None:
            self._experiments = None

    def slugs(self) -> frozenset[str]:
        """The pages whose experiments the registry holds."""
        return frozenset(self._pages)

    def retain(self, slugs: Iterable[str], among: Iterable[str] | None = None) -> None:
        """Forget every page (of `among`, default all) not among `slugs`, what the CMS lists."""
        keep = set(slugs)
        candidates = self._pages if among is None else among
        for slug in [slug for slug in candidates if slug not in keep]:
            self.forget(slug)

    def _known(self) -> dict[str, Experiment]:
        """Every page's experiments by key; the same key on two pages: the first slug's."""
        if self._experiments is None:
            merged: dict[str, Experiment] = {}
            for slug in sorted(self._pages):
                for experiment in self._pages[slug]:
                    merged.setdefault(experiment.key, experiment)
            self._experiments = {key: merged[key] for key in sorted(merged)[:MAX_EXPERIMENTS]}
        return self._experiments

    def arms(
        self, context: TargetingContext, allocation: Allocation
    ) -> tuple[tuple[str, int | None], ...]:
        """The visitor's variation in each known experiment (None: not enrolled)."""
        experiments = self._known()
        if not context.profile_available or not experiments:
            return ()
        attributes = hash_attributes(context)
        arms: list[tuple[str, int | None]] = []
        for key, experiment in experiments.items():
            assignment, _ = run_experiment(
                experiment,
                attributes,
                now=context.now,
                sticky_docs=context.sticky_buckets,
                groups=context.groups,
                allocation=allocation,
            )
            arms.append((key, assignment.variation if assignment.in_experiment else None))
        return tuple(arms)


class ExperimentSweep(Service):
    """Reads every published page into the registry at start, then every `interval` s.

    Pages are read through the content cache (shared between replicas when it
    lives in Redis) at whatever age it holds them, so a sweep asks the CMS
    only for pages never cached; a few at a time, in the background:
    readiness does not wait for it. What a sweep concludes depends on the
    content alone: a page that is gone or malformed leaves the registry on
    every replica alike. A CMS that is down or rate-limits us ends the sweep
    at once (visitors' requests need what is left of its rate limit), leaving
    the registry as it was; so does a CMS that cannot list its pages.
    """

    def __init__(
        self,
        registry: ExperimentRegistry,
        adapter: CMSAdapter,
        content: ContentCache,
        *,
        interval: float,
        concurrency: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.adapter = adapter
        self.content = content
        self.interval = interval
        self.concurrency = concurrency
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> bool:
        """Read every page the CMS lists now; False when the sweep could not finish."""
        try:
            slugs = await self.adapter.list_pages()
        except CMSError as exc:
            logger.warning("experiment sweep: the CMS did not list its pages: %s", exc)
            return False
        known = self.registry.slugs()
        pending = iter(slugs)
        stopped: list[CMSError] = []

        async def reader() -> None:
            # A few readers share one iterator: no task per page on a site of 100,000.
            for slug in pending:
                if stopped:
                    return
                try:
                    parsed = await self.content.scan_page(slug)
                except (ContentNotFound, MalformedContent):
                    self.registry.forget(slug)  # as every replica reading it concludes
                except CMSError as exc:
                    stopped.append(exc)  # unavailable, rate-limited or refused: try later
                except Exception:
                    # Keep the page's previous experiments; the other pages still count.
                    logger.exception("experiment sweep: reading page %r failed", slug)
                else:
                    self.registry.page(slug, parsed.page.experiments)

        await asyncio.gather(*(reader() for _ in range(self.concurrency)))
        if stopped:
            logger.warning("experiment sweep stopped, the CMS failed: %s", stopped[0])
            return False
        # Only pages known when the sweep began: one served since may be newer than the list.
        self.registry.retain(slugs, among=known)
        return True

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                # A bug in one sweep must not end the sweeping (nor take the gateway down).
                logger.exception("experiment sweep failed")
            # Spread out: replicas started together must not sweep the CMS together.
            await asyncio.sleep(self.interval * self._rng.uniform(0.8, 1.2))

    async def start(self) -> None:
        """Sweep in the background now and every `interval` seconds."""
        self._task = asyncio.create_task(self._loop(), name="experiment-sweep")

    async def aclose(self) -> None:
        """Stop sweeping."""
        task, self._task = self._task, None
        await cancel(task)
