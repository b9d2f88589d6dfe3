"""`python -m gateway segments train | report | activate | rollback | assign`: learned segments.

- `train [--k K | --k-range LOW:HIGH] [--seed S] [--activate]`: cluster every
  live profile (k by silhouette over the range, 3:12 by default), print the
  segments, register the segmentation signed (kind `segments`); `--activate`
  serves it and writes every profile's `segment`.
- `report [--against VERSION] [--format text|json] [--chart FILE]`: sizes,
  centroids, drift over time and stability (adjusted Rand index) of the
  active segmentation; the text format writes the chart beside the table
  (`segments-report.html` by default).
- `activate VERSION`, `rollback`: serve another segmentation (or none) and
  rewrite every profile's `segment` accordingly; `assign` rewrites them under
  the active one (after `models activate`, say).

Exit status: 0 done, 1 refused (not enough profiles, no such or no active
segmentation, a signature that does not verify), 2 the database or the
configuration is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.models_cli import Database, run_with_registry
from scoring.registry import ModelRegistry

_RANGE = re.compile(r"^(\d+):(\d+)$")


def _k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 2 <= k <= 50:
        raise argparse.ArgumentTypeError("k must be between 2 and 50")
    return k


def _k_range(value: str) -> list[int]:
    found = _RANGE.match(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a range such as 3:12")
    low, high = int(found.group(1)), int(found.group(2))
    if not 2 <= low <= high <= 50:
        raise argparse.ArgumentTypeError("the range must satisfy 2 <= LOW <= HIGH <= 50")
    return list(range(low, high + 1))


async def apply_active(database: Database, registry: ModelRegistry) -> dict[str, int]:
    """Rewrite every profile's `segment` under the active segmentation (or remove it)."""
    from scoring.registry import SEGMENTS_MODEL
    from scoring.segments.model import Segmentation
    from scoring.segments.training import assign_profiles

    loaded = await registry.load_active(SEGMENTS_MODEL)
    segmentation = (
        loaded.estimator
        if loaded is not None and isinstance(loaded.estimator, Segmentation)
        else None
    )
    version = None if loaded is None else loaded.version
    return await assign_profiles(database, segmentation, version, now=datetime.now(UTC))


def _train(args: argparse.Namespace) -> int:
    from scoring.segments.model import DEFAULT_K_RANGE
    from scoring.segments.training import train_segments

    k_values = (
        [args.k]
        if args.k
        else args.k_range or list(range(DEFAULT_K_RANGE[0], DEFAULT_K_RANGE[1] + 1))
    )

    async def command(database: Database, registry: ModelRegistry) -> int:
        result = await train_segments(
            database,
            registry,
            k_values=k_values,
            now=datetime.now(UTC),
            seed=args.seed,
            activate=args.activate,
        )
        print(result.format())
        if not args.activate:
            print(f"activate it with: python -m gateway segments activate {result.version}")
        return 0

    return run_with_registry("segments train", command)


def _report(args: argparse.Namespace) -> int:
    from scoring.segments.report import chart_html, segment_report

    async def command(database: Database, registry: ModelRegistry) -> int:
        report = await segment_report(
            database, registry, now=datetime.now(UTC), against=args.against
        )
        chart: str | None = args.chart
        if chart is None and args.format == "text":
            chart = "segments-report.html"
        if chart is not None:
            await asyncio.to_thread(Path(chart).write_text, chart_html(report), encoding="utf-8")
        if args.format == "json":
            print(json.dumps(report.as_json(), indent=2))
        else:
            print(report.format(chart))
        return 0

    return run_with_registry("segments report", command)


def _activate(args: argparse.Namespace) -> int:
    from scoring.errors import ModelNotFound
    from scoring.registry import SEGMENTS_MODEL

    async def command(database: Database, registry: ModelRegistry) -> int:
        info = await registry.info(args.version)
        if info.kind != SEGMENTS_MODEL:
            raise ModelNotFound(f"{args.version} is a {info.kind} model, not a segmentation")
        await registry.activate(args.version)
        counts = await apply_active(database, registry)
        print(f"activated {args.version}; {counts.get('written', 0)} profiles reassigned")
        return 0

    return run_with_registry("segments activate", command)


def _rollback(args: argparse.Namespace) -> int:
    from scoring.registry import SEGMENTS_MODEL

    async def command(database: Database, registry: ModelRegistry) -> int:
        previous = await registry.rollback(SEGMENTS_MODEL)
        counts = await apply_active(database, registry)
        written = counts.get("written", 0)
        if previous is None:
            print(f"rolled back: no segmentation is active now ({written} profiles cleared)")
        else:
            print(f"rolled back: {previous} is the active segmentation ({written} reassigned)")
        return 0

    return run_with_registry("segments rollback", command)


def _assign(args: argparse.Namespace) -> int:
    async def command(database: Database, registry: ModelRegistry) -> int:
        counts = await apply_active(database, registry)
        print(
            f"{counts.get('written', 0)} profiles written, {counts.get('unchanged', 0)} unchanged"
        )
        return 0

    return run_with_registry("segments assign", command)


def add_segments_command(commands: Any) -> None:
    """Register `segments train | report | activate | rollback | assign`."""
    parser = commands.add_parser("segments", help="learned visitor segments")
    sub = parser.add_subparsers(dest="segments_command", required=True)
    train = sub.add_parser("train", help="cluster the profiles into segments and register them")
    ks = train.add_mutually_exclusive_group()
    ks.add_argument("--k", type=_k, help="exactly K segments")
    ks.add_argument("--k-range", type=_k_range, help="choose k by silhouette in LOW:HIGH (3:12)")
    train.add_argument("--seed", type=int, default=0, help="k-means seed (0)")
    train.add_argument("--activate", action="store_true", help="serve it and assign every profile")
    train.set_defaults(handler=_train)
    report = sub.add_parser("report", help="sizes, centroids, drift and stability: table and chart")
    report.add_argument(
        "--against", help="the segmentation to compare with (default: the previous)"
    )
    report.add_argument("--format", choices=("text", "json"), default="text")
    report.add_argument("--chart", help="write the chart here (text default: segments-report.html)")
    report.set_defaults(handler=_report)
    activate = sub.add_parser("activate", help="serve VERSION and reassign every profile")
    activate.add_argument("version")
    activate.set_defaults(handler=_activate)
    rollback = sub.add_parser("rollback", help="serve the previous segmentation (or none)")
    rollback.set_defaults(handler=_rollback)
    assign = sub.add_parser("assign", help="rewrite every profile's segment under the active one")
    assign.set_defaults(handler=_assign)
