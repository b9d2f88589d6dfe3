"""Prove the experiment statistics honest, through the real assignment and analysis code.

    python bench/experiments_aa.py                 # a few minutes on one core
    python bench/experiments_aa.py --experiments 1000 --visitors 1000

Three checks, each printing what it measured (exit status 1 if one fails):

1. Sample-ratio mismatch: 10,000 visitors assigned 52/48 (a serving bug)
   while the experiment is configured 50/50 are flagged (p < 0.001); the
   same visitors assigned as configured are not.
2. Power: the sample `experiments.stats` plans for a 10 % relative lift on a
   5 % conversion rate (alpha 0.05, power 0.80) detects a true 10 % lift in
   about 80 % of simulated experiments (0.80 inside the simulation's 99 %
   band: ± 0.07 for 200 runs).
3. A/A: many experiments whose arms are identical (both convert at the same
   rate); the share the two-proportion z-test calls significant at
   alpha = 0.05 is the false-positive rate, which must be 0.05 ± 0.01.

Every visitor is assigned by `blocks.experiments.run_experiment` (GrowthBook's
hashing) under an experiment parsed from a real block definition, its
exposure and purchase go through `experiments.metrics` (one exposure per
visitor and day, metrics from events) and every verdict comes from
`experiments.analysis.analyze`, exactly as `python -m gateway experiments
report` computes them. The last line is `A/A false-positive rate: <rate>`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from blocks.experiments import Experiment, Plan, run_experiment
from blocks.parse import parse_page
from experiments.analysis import ExperimentInfo, analyze
from experiments.data import info_from
from experiments.metrics import Exposure, Unit, reduce_exposures, unit_rows
from experiments.stats import proportion_power

ALPHA = 0.05
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=7)


def experiment(key: str, *, weights: list[float] | None = None) -> Experiment:
    """An experiment as editors define it, through the real parser."""
    definition: dict[str, Any] = {
        "key": key,
        "status": "running",
        "variations": ["control", "treatment"],
        "metrics": ["conversion"],
        "plan": {"mde": 0.1, "alpha": ALPHA, "power": 0.8},
    }
    if weights is not None:
        definition["weights"] = weights
    block = {
        "id": "hero",
        "type": "hero",
        "variants": [
            {
                "id": "control",
                "default": True,
                "fields": {"heading": "A"},
                "experiment": definition,
            },
            {"id": "treatment", "fields": {"heading": "B"}},
        ],
    }
    parsed = parse_page({"slug": "bench", "title": "Bench", "blocks": [block]})
    assert not parsed.problems, parsed.problems
    (found,) = parsed.page.experiments
    return found


def assign(exp: Experiment, visitors: list[str]) -> list[int]:
    """Each visitor's variation, by the real assignment (first visits: no sticky bucket yet)."""
    out = []
    for visitor in visitors:
        # Anonymous visitors: no userId yet, so the fallback attribute (visitorId) is hashed.
        result, _ = run_experiment(exp, {"visitorId": visitor}, now=NOW, sticky_docs={})
        assert result.in_experiment
        out.append(result.variation)
    return out


def expose(
    visitors: list[str], variations: list[int], rng: np.random.Generator
) -> tuple[Unit, ...]:
    """Each visitor's first exposure during the last six days, reduced like the log's."""
    offsets = rng.uniform(0, 6 * 86400, size=len(visitors))
    exposures = [
        Exposure(f"visitorId:{visitor}", visitor, variation, START + timedelta(seconds=float(s)))
        for visitor, variation, s in zip(visitors, variations, offsets, strict=True)
    ]
    return reduce_exposures(exposures).units


def outcomes(
    info: ExperimentInfo,
    units: tuple[Unit, ...],
    rates: tuple[float, float],
    rng: np.random.Generator,
) -> Any:
    """Purchases drawn at each arm's rate after the first exposure, analysed like a report."""
    arms = np.array([unit.variation for unit in units])
    bought = rng.random(len(units)) < np.where(arms == 1, rates[1], rates[0])
    events = [
        {
            "type": "purchase",
            "visitorId": next(iter(unit.visitors)),
            "timestamp": unit.first + timedelta(minutes=5),
            "properties": {"revenue": 50.0},
        }
        for unit, yes in zip(units, bought, strict=True)
        if yes
    ]
    rows = unit_rows(units, events, info.metrics, info.blocks)
    return analyze(info, rows, now=NOW, alpha=ALPHA)


def simulate(
    info: ExperimentInfo,
    visitors: list[str],
    variations: list[int],
    rates: tuple[float, float],
    rng: np.random.Generator,
) -> Any:
    """Exposures and purchases for these visitors, analysed like a real report."""
    return outcomes(info, expose(visitors, variations, rng), rates, rng)


def _inject(visitors: list[str], variations: list[int], target: tuple[int, int]) -> list[int]:
    """The first visitors of each arm until it has `target` users: the rest are lost."""
    kept, counts = [], [0, 0]
    for index, variation in enumerate(variations):
        if counts[variation] < target[variation]:
            counts[variation] += 1
            kept.append(index)
    assert counts == list(target), "not enough visitors to inject the split"
    return kept


def srm_check(seed: int) -> bool:
    """An injected 52/48 split at n = 10,000 (configured 50/50) is flagged; 50/50 is not."""
    print("== sample-ratio mismatch: n = 10,000, configured 50/50")
    configured = experiment("srm-check")
    info = info_from(configured)
    visitors = [f"srm-{seed}-{i}" for i in range(12_000)]
    variations = assign(configured, visitors)
    rng = np.random.default_rng(seed)
    # The injected bug: the treatment's exposures stop being logged once it has 4,800 users
    # (a beacon blocked in one arm, a redirect that loses some visitors...).
    injected = _inject(visitors, variations, (5_200, 4_800))
    honest = list(range(10_000))
    ok = True
    for label, kept, expect in (
        ("injected 52/48", injected, True),
        ("as assigned", honest, False),
    ):
        report = simulate(
            info, [visitors[i] for i in kept], [variations[i] for i in kept], (0.05, 0.05), rng
        )
        srm = report.srm
        assert srm is not None
        split = "/".join(f"{v.users:,}" for v in report.variations)
        verdict = "FLAGGED" if srm.flagged else "not flagged"
        print(f"   {label}: users {split}, chi-square {srm.chi2:.1f}, p = {srm.p:.2g}: {verdict}")
        ok &= srm.flagged is expect
    print(f"   {'ok' if ok else 'FAILED'}")
    return ok


def power_check(seed: int, keys: int, draws: int) -> bool:
    """The planned sample detects a true 10 % lift on a 5 % base at about the planned power."""
    planned = proportion_power(0.05, 2, alpha=ALPHA, power=0.8, planned_mde=0.10)
    assert planned.users_needed is not None
    per_arm = int(np.ceil(planned.users_needed))
    print(
        f"== power: 5% base rate, true lift +10%, alpha {ALPHA}: planned {per_arm:,} users "
        f"per arm for 80% power ({keys} experiments x {draws} outcome draws)"
    )
    rng = np.random.default_rng(seed)
    detected = total = 0
    started = time.perf_counter()
    for k in range(keys):
        exp = replace(experiment(f"power-{seed}-{k}"), plan=Plan(mde=0.1, alpha=ALPHA))
        info = info_from(exp)
        visitors = [f"power-{seed}-{k}-{i}" for i in range(2 * per_arm)]
        units = expose(visitors, assign(exp, visitors), rng)
        for _ in range(draws):
            report = outcomes(info, units, (0.05, 0.055), rng)
            row = report.metrics[0].rows[1]
            detected += bool(row.significant and (row.lift or 0) > 0)
            total += 1
    rate = detected / total
    # Consistent with the planned power: 0.80 within the simulation's 99% band.
    band = 2.576 * (0.8 * 0.2 / total) ** 0.5
    ok = abs(rate - 0.80) <= band
    print(
        f"   detected in {detected} of {total} experiments: {rate:.3f} (planned 0.80 ± "
        f"{band:.3f}, the 99% band of {total} runs; {time.perf_counter() - started:.0f} s): "
        f"{'ok' if ok else 'FAILED'}"
    )
    return ok


def aa_check(seed: int, experiments: int, visitors: int) -> tuple[bool, float]:
    """Identical arms: the share of significant results is the false-positive rate."""
    print(
        f"== A/A: {experiments:,} experiments of {visitors:,} visitors, both arms converting "
        f"at 20%, two-proportion z-test at alpha {ALPHA}"
    )
    rng = np.random.default_rng(seed)
    names = random.Random(seed)
    positives = srm_flags = 0
    started = time.perf_counter()
    for k in range(experiments):
        exp = experiment(f"aa-{seed}-{k}")
        info = info_from(exp)
        ids = [f"v{names.getrandbits(48):012x}" for _ in range(visitors)]
        report = simulate(info, ids, assign(exp, ids), (0.2, 0.2), rng)
        row = report.metrics[0].rows[1]
        positives += row.p_value is not None and row.p_value < ALPHA
        srm_flags += report.srm is not None and report.srm.flagged
    rate = positives / experiments
    ok = abs(rate - ALPHA) <= 0.01
    print(
        f"   significant: {positives} of {experiments} ({rate:.3f}; must be {ALPHA} ± 0.01); "
        f"SRM flagged: {srm_flags} ({srm_flags / experiments:.4f}; expected about 0.001); "
        f"{time.perf_counter() - started:.0f} s: {'ok' if ok else 'FAILED'}"
    )
    return ok, rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=4000, help="A/A experiments")
    parser.add_argument("--visitors", type=int, default=300, help="visitors per A/A experiment")
    parser.add_argument("--power-keys", type=int, default=4, help="assignments for the power check")
    parser.add_argument("--power-draws", type=int, default=50, help="outcome draws per assignment")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.experiments < 1000:
        parser.error("--experiments: at least 1000 A/A experiments")
    ok = srm_check(args.seed)
    ok &= power_check(args.seed, args.power_keys, args.power_draws)
    aa_ok, rate = aa_check(args.seed, args.experiments, args.visitors)
    ok &= aa_ok
    print(f"A/A false-positive rate: {rate:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
