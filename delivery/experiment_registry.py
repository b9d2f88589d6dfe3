"""The experiments this gateway has served, so an edge key can cover their arms.

An audience page under test is the same for every visitor with the same
facts *and the same arms*. The edge cannot know which experiments a page runs
before it has the page, so the visitor's key (the `tsr_ek` cookie) covers
their arm in every experiment this gateway has served a page of. A page that
brings a new experiment changes every key once: visitors then get that page
privately, with their new key, and share it from the next request on.
"""

from __future__ import annotations

from collections.abc import Iterable

from blocks.context import TargetingContext
from blocks.experiments import Allocation, Experiment, hash_attributes, run_experiment

#: Plenty for any site; beyond it the oldest experiments leave the key (and pages under
#: them are answered privately until they are served again).
MAX_EXPERIMENTS = 256


class ExperimentRegistry:
    """Experiments by key, as last seen in a served page."""

    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}

    def __len__(self) -> int:
        return len(self._experiments)

    def add(self, experiments: Iterable[Experiment]) -> None:
        """Remember the experiments of a page just served (the newest definition wins)."""
        for experiment in experiments:
            self._experiments.pop(experiment.key, None)
            self._experiments[experiment.key] = experiment
        while len(self._experiments) > MAX_EXPERIMENTS:
            del self._experiments[next(iter(self._experiments))]

    def arms(
        self, context: TargetingContext, allocation: Allocation
    ) -> tuple[tuple[str, int | None], ...]:
        """The visitor's variation in each known experiment (None: not enrolled)."""
        if not context.profile_available or not self._experiments:
            return ()
        attributes = hash_attributes(context)
        arms: list[tuple[str, int | None]] = []
        for key in sorted(self._experiments):
            assignment, _ = run_experiment(
                self._experiments[key],
                attributes,
                now=context.now,
                sticky_docs=context.sticky_buckets,
                groups=context.groups,
                allocation=allocation,
            )
            arms.append((key, assignment.variation if assignment.in_experiment else None))
        return tuple(arms)
