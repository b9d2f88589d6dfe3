"""`python -m gateway recommendations train | evaluate | online`: the recommendation models.

- `train [--days N | --since ISO] [--until ISO] [--events FILE] [--catalog auto|cms|events]
  [--half-life-days H] [--activate]`: read the product events of the window
  (from the database, or an NDJSON file in the `/v1/events` format), report the
  offline evaluation, fit every model and register them signed (kind
  `recommendations`); `--activate` serves them (every gateway hot-reloads).
- `evaluate --events FILE [--format text|json] [--catalog auto|cms|events]
  [--test-fraction F] [--half-life-days H]`: precision@10, recall@10, NDCG@10,
  coverage and novelty of each model and of the popularity baseline, on a time
  split of the file; needs no database.
- `online [--days N]`: what the served recommendations earned: impressions,
  clicks and click-through rate per block, strategy and source.

The catalogue is the CMS's (`CMS`, `CONTENT_DIR`) when it has one that holds
at least half the products the events name (`auto`), else the products the
events name. Exit status: 0 done, 1 not enough data, 2 the file, the database,
the content or the configuration is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from blocks.catalog import Catalog
from gateway.cli_args import iso_instant
from gateway.models_cli import Database, Unusable, run_with_registry
from scoring.errors import NotEnoughData
from scoring.registry import ModelRegistry


def _fraction(value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.05 <= fraction <= 0.5:
        raise argparse.ArgumentTypeError("the test fraction must be between 0.05 and 0.5")
    return fraction


def _half_life(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= days <= 3650:
        raise argparse.ArgumentTypeError("the half-life must be 0 (no decay) to 3650 days")
    return days


async def cms_catalog() -> Catalog | None:
    """The configured CMS's catalogue; None when it has none (Unusable when unreadable)."""
    from cms_adapters.errors import CatalogNotConfigured, CMSError
    from gateway.app import build_adapter
    from gateway.settings import Settings

    try:
        async with build_adapter(Settings()) as adapter:
            return await adapter.fetch_catalog()
    except CatalogNotConfigured:
        return None
    except (CMSError, ValueError) as exc:
        raise Unusable(f"cannot read the CMS catalogue: {exc}") from exc


def _read(path: Path) -> Any:
    from scoring.recommendations.interactions import read_events

    try:
        found = read_events(path)
    except OSError as exc:
        raise Unusable(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise Unusable(f"{path} is not UTF-8 text: {exc}") from exc
    if found.problems:
        first = found.problems[0]
        # An event may have several problems: the count is of lines left out.
        bad = len({problem.index for problem in found.problems})
        print(
            f"{path}: {bad} of {found.lines} lines were left out "
            f"({len(found.problems)} problem(s)); "
            f"first: line {first.index + 1} {first.field or '(event)'}: {first.message}",
            file=sys.stderr,
        )
    return found.events


def _evaluate(args: argparse.Namespace) -> int:
    from scoring.recommendations.evaluation import evaluate
    from scoring.recommendations.interactions import interactions
    from scoring.recommendations.models import Params
    from scoring.recommendations.training import choose_catalog

    try:
        events = _read(Path(args.events))
        cms = None if args.catalog == "events" else asyncio.run(cms_catalog())
        chosen = choose_catalog(cms, events, args.catalog)
        result = evaluate(
            interactions(events),
            chosen.catalog,
            test_fraction=args.test_fraction,
            params=Params(half_life_days=args.half_life_days),
        )
    except NotEnoughData as exc:
        print(f"recommendations evaluate: {exc}", file=sys.stderr)
        return 1
    except Unusable as exc:
        print(f"recommendations evaluate: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.as_json()))
    else:
        print(chosen.note)
        print(result.format())
    return 0


def _train(args: argparse.Namespace) -> int:
    from scoring.recommendations.models import Params
    from scoring.recommendations.training import choose_catalog, load_events, train_recommendations

    until: datetime = args.until or datetime.now(UTC)
    since: datetime = args.since or until - timedelta(days=args.days)

    async def command(database: Database, registry: ModelRegistry) -> int:
        if args.events:
            events = _read(Path(args.events))
            window: dict[str, Any] = {"events": Path(args.events).name}
            now = max((e.timestamp for e in events), default=until)
        else:
            events = await load_events(database, since=since, until=until)
            window = {"since": since, "until": until}
            now = until
        cms = None if args.catalog == "events" else await cms_catalog()
        chosen = choose_catalog(cms, events, args.catalog)
        report = await train_recommendations(
            registry,
            events,
            chosen,
            now=now,
            window=window,
            params=Params(half_life_days=args.half_life_days),
            activate=args.activate,
        )
        print(report.format())
        if not args.activate:
            print(f"activate it with: python -m gateway models activate {report.version}")
        return 0

    return run_with_registry("recommendations train", command)


def _online(args: argparse.Namespace) -> int:
    from scoring.recommendations.online import online_report

    async def command(database: Database, registry: ModelRegistry) -> int:
        since = datetime.now(UTC) - timedelta(days=args.days)
        report = await online_report(database, since=since)
        print(report.format())
        return 0

    return run_with_registry("recommendations online", command)


def _quiet(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        # Parsing content logs a warning per bad condition; the linter reports those.
        logging.disable(logging.WARNING)
        try:
            result: int = handler(args)
        finally:
            logging.disable(logging.NOTSET)
        return result

    return run


def add_recommendations_command(commands: Any) -> None:
    """Register `recommendations train | evaluate | online` on the CLI's subcommands."""
    parser = commands.add_parser("recommendations", help="train and evaluate recommendations")
    sub = parser.add_subparsers(dest="recommendations_command", required=True)
    catalog_help = "where products come from (auto: the CMS's if it covers the events)"

    train = sub.add_parser("train", help="fit, evaluate and register the recommendation models")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--days", type=float, default=90.0, help="window: the last N days (90)")
    start.add_argument("--since", type=iso_instant, help="window start (ISO 8601)")
    train.add_argument("--until", type=iso_instant, help="window end (ISO 8601; default now)")
    train.add_argument("--events", help="train on this NDJSON file instead of the database")
    train.add_argument(
        "--catalog", choices=("auto", "cms", "events"), default="auto", help=catalog_help
    )
    train.add_argument(
        "--half-life-days",
        type=_half_life,
        default=30.0,
        help="interaction weights halve in this time (30; 0: no decay)",
    )
    train.add_argument("--activate", action="store_true", help="serve the new models")
    train.set_defaults(handler=_quiet(_train))

    evaluate = sub.add_parser("evaluate", help="compare the models offline on an event file")
    evaluate.add_argument("--events", required=True, help="NDJSON file of /v1/events events")
    evaluate.add_argument("--format", choices=("text", "json"), default="text")
    evaluate.add_argument(
        "--catalog", choices=("auto", "cms", "events"), default="auto", help=catalog_help
    )
    evaluate.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="share of the touches, the latest, held out (0.2)",
    )
    evaluate.add_argument(
        "--half-life-days",
        type=_half_life,
        default=30.0,
        help="interaction weights halve in this time (30)",
    )
    evaluate.set_defaults(handler=_quiet(_evaluate))

    online = sub.add_parser("online", help="impressions, clicks and CTR of served recommendations")
    online.add_argument("--days", type=float, default=7.0, help="the last N days (7)")
    online.set_defaults(handler=_online)
